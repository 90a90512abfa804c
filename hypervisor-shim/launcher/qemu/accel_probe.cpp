#include "qemu/accel_probe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "error.hpp"
#include "host/process.hpp"
#include "qemu/qemu_command.hpp"
#include "run/run_dir.hpp"

namespace partlink {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::string seconds_text(Clock::duration d) {
    std::ostringstream s;
    s << std::chrono::round<std::chrono::milliseconds>(d).count() / 1000.0 << " s";
    return s.str();
}

std::string why_qemu_failed(const ExitStatus& status, const std::filesystem::path& log) {
    std::string why = "QEMU " + status.describe();
    std::string tail = tail_lines(log, 1);
    while (!tail.empty() && tail.back() == '\n')
        tail.pop_back();
    if (!tail.empty() && tail[0] != '(') // not "(empty)" or "(... does not exist)"
        why += ": " + tail;
    return why;
}

Process spawn_probe(const std::vector<std::string>& argv, const ProbeSetup& setup) {
    SpawnOptions options;
    options.output_file = setup.log;
    options.new_session = true;
    return Process::spawn(argv, options);
}

bool file_contains(const std::filesystem::path& path, std::string_view needle) {
    auto text = read_text_file(path);
    return text && text->find(needle) != std::string::npos;
}

} // namespace

ProbeResult run_bios_probe(const ProbeSetup& setup, Accel accel) {
    auto image = probe_bios_image();
    write_file_atomic(setup.bios,
                      std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
    Process qemu =
        spawn_probe(build_probe_argv(setup.qemu, accel, setup.bios, setup.firmware_dirs), setup);
    auto status = qemu.wait_for(setup.timeout);
    if (!status) {
        qemu.signal(SIGKILL);
        qemu.wait();
    }
    std::error_code ec;
    std::filesystem::remove(setup.bios, ec);
    if (!status)
        return {false, "guest did not run within " + seconds_text(setup.timeout)};
    if (status->code == kProbeBootedExitStatus)
        return {true, "probe booted"};
    return {false, why_qemu_failed(*status, setup.log)};
}

ProbeResult run_kernel_probe(const ProbeSetup& setup, Accel accel) {
    if (!setup.kernel)
        return {false, "no guest kernel to probe with"};
    std::error_code ec;
    std::filesystem::remove(setup.console, ec);
    const auto start = Clock::now();
    Process qemu = spawn_probe(build_kernel_probe_argv(setup.qemu, accel, *setup.kernel,
                                                       setup.console, setup.firmware_dirs),
                               setup);
    // ~Process kills the probe guest on every way out.
    while (Clock::now() - start < setup.timeout) {
        if (file_contains(setup.console, kKernelBanner))
            return {true,
                    "probe booted; guest kernel started in " + seconds_text(Clock::now() - start)};
        if (auto status = qemu.poll())
            return {false, why_qemu_failed(*status, setup.log)};
        std::this_thread::sleep_for(50ms);
    }
    return {false, "guest ran its first instruction, but its kernel printed nothing within " +
                       seconds_text(setup.timeout)};
}

ProbeResult run_accel_probe(const ProbeSetup& setup, Accel accel) {
    ProbeResult first = run_bios_probe(setup, accel);
    if (!first.booted || !setup.kernel)
        return first;
    return run_kernel_probe(setup, accel);
}

Accel choose_accel(Accel requested, const ProbeSetup& setup, const Output& out) {
    if (requested == Accel::Tcg) {
        out.info("accel tcg (requested)");
        return Accel::Tcg;
    }
    std::string why_not;
    if (::access("/dev/kvm", R_OK | W_OK) != 0) {
        why_not = errno_message("/dev/kvm");
    } else {
        ProbeResult r = run_accel_probe(setup, Accel::Kvm);
        if (r.booted) {
            out.info("accel kvm (" + r.detail + ")");
            return Accel::Kvm;
        }
        why_not = "KVM probe: " + r.detail;
    }
    if (requested == Accel::Kvm)
        throw Error("--accel kvm: KVM does not work on this host (" + why_not +
                    "); use --accel tcg or auto");
    out.info("accel tcg (" + why_not + ")");
    return Accel::Tcg;
}

} // namespace partlink
