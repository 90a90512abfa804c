#include "up.hpp"

#include <ctime>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "accel_probe.hpp"
#include "net_setup.hpp"
#include "partlinkd_control.hpp"
#include "ports.hpp"
#include "process.hpp"
#include "qemu_command.hpp"
#include "ssh.hpp"
#include "teardown.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kTailLines = 20;
constexpr auto kProbeTimeout = 3s;
constexpr auto kPollInterval = 100ms;
// Before the console says the guest is ready, ssh is tried now and then
// anyway, in case an image does not print the ready line.
constexpr auto kSshRetryBeforeReady = 3s;
constexpr auto kSshRetryAfterReady = 500ms;
constexpr auto kSshProbeTimeout = 15s;

// ^C during `up` must tear down what was started, not leave QEMUs behind.
volatile sig_atomic_t g_interrupted = 0;

class InterruptWatch {
public:
    InterruptWatch() {
        struct sigaction sa {};
        sa.sa_handler = [](int sig) {
            g_interrupted = sig;
        };
        sigemptyset(&sa.sa_mask);
        for (std::size_t i = 0; i < kSignals.size(); ++i)
            ::sigaction(kSignals[i], &sa, &old_[i]);
    }
    ~InterruptWatch() {
        for (std::size_t i = 0; i < kSignals.size(); ++i)
            ::sigaction(kSignals[i], &old_[i], nullptr);
    }
    InterruptWatch(const InterruptWatch&) = delete;
    InterruptWatch& operator=(const InterruptWatch&) = delete;

    static void check() {
        if (int sig = g_interrupted)
            throw Error(std::string("interrupted by SIG") + sigabbrev_np(sig), 128 + sig);
    }

private:
    static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
    std::array<struct sigaction, 3> old_{};
};

std::string seconds(Clock::duration d) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << std::chrono::duration<double>(d).count() << " s";
    return s.str();
}

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

void refuse_or_clean_up(const RunDir& dir, const Output& out) {
    Leftovers left = find_leftovers(dir);
    if (!left.live_qemus.empty())
        throw Error("already up; run `partlink down` first (" + join(left.live_qemus) +
                    " running in " + dir.path().string() + ")");
    if (left.any()) {
        out.info("cleaning up the leftovers of a run that did not shut down cleanly");
        TeardownReport r = tear_down(dir, out);
        if (!r.errors.empty())
            throw Error("could not clean up the earlier run (" + r.errors.front() +
                        "); fix that and run `partlink down`");
    }
}

std::vector<PortReservation> reserve_ports(const UpOptions& opts) {
    std::vector<PortReservation> ports;
    for (int i = 0; i < opts.vms; ++i)
        ports.push_back(opts.ssh_port_base ? PortReservation::exact(static_cast<std::uint16_t>(
                                                 *opts.ssh_port_base + i))
                                           : PortReservation::any());
    return ports;
}

RunState initial_state(const UpOptions& opts, Accel accel, const RunDir& dir,
                       const std::vector<PortReservation>& ports) {
    RunState s;
    s.run_dir = dir.path();
    s.created = utc_now();
    s.launcher_pid = ::getpid();
    s.settings.vms = opts.vms;
    s.settings.mem_mib = opts.mem_mib;
    s.settings.cpus = opts.cpus;
    s.settings.accel_requested = opts.accel;
    s.settings.accel = accel;
    s.settings.net = opts.net;
    if (opts.ssh_port_base)
        s.settings.ssh_port_base = *opts.ssh_port_base;
    s.settings.timeout_seconds = static_cast<int>(opts.timeout.count());
    for (int index = 1; index <= opts.vms; ++index) {
        PartitionRecord p;
        p.name = vm_name(index);
        p.index = index;
        p.ip = guest_ip(index);
        p.mac = data_nic_mac(index, opts.net);
        p.mgmt_mac = mgmt_mac(index);
        p.partlink_mac = partlink_mac(index);
        p.ssh_port = ports[static_cast<std::size_t>(index - 1)].port();
        p.accel = accel;
        p.net = opts.net;
        p.console = dir.console_file(index);
        p.log = dir.log_file(index);
        p.qmp = dir.qmp_socket(index);
        p.pidfile = dir.pid_file(index);
        s.partitions.push_back(std::move(p));
    }
    return s;
}

// Every interface is written to the state before it is created, so that a
// launcher killed right after creating it still leaves a record for `down`.
void set_up_tap_network(RunState& state, const RunDir& dir, const Output& out) {
    IfNames names = IfNames::for_run_dir(dir.path());
    state.bridge = names.bridge();
    dir.save_state(state);
    create_bridge(*state.bridge);
    std::vector<std::string> taps;
    for (auto& p : state.partitions) {
        p.taps = {names.tap(p.index)};
        dir.save_state(state);
        create_tap(p.taps.front(), *state.bridge);
        taps.push_back(p.taps.front());
    }
    out.info("network virtio-tap: bridge " + *state.bridge + " (no host address), taps " +
             join(taps));
}

VmSpec vm_spec(const RunState& state, const PartitionRecord& p, const Layout& layout,
               const RunDir& dir) {
    VmSpec spec;
    spec.index = p.index;
    spec.mem_mib = state.settings.mem_mib;
    spec.cpus = state.settings.cpus;
    spec.accel = p.accel;
    spec.net = p.net;
    spec.qemu = layout.qemu;
    spec.firmware_dirs = layout.firmware_dirs();
    spec.kernel = layout.kernel();
    spec.initrd = layout.initrd();
    spec.console_file = p.console;
    spec.qmp_socket = p.qmp;
    spec.pid_file = p.pidfile;
    spec.ssh_port = static_cast<std::uint16_t>(p.ssh_port);
    if (!p.taps.empty())
        spec.tap = p.taps.front();
    spec.data_socket = dir.data_socket();
    spec.data_socket_server = p.index == 1;
    spec.fabric_socket = dir.partlinkd_socket();
    return spec;
}

void remove_if_exists(const fs::path& p) {
    std::error_code ec;
    fs::remove(p, ec);
}

// Starts partlinkd and waits until it listens.  Like an interface, it is
// recorded in the state before it exists, its pid right after.
Process start_partlinkd(RunState& state, const UpOptions& opts, const Layout& layout,
                        const RunDir& dir, const Output& out) {
    DaemonRecord d;
    d.socket = dir.partlinkd_socket();
    d.segment = dir.fabric_segment();
    d.log = dir.partlinkd_log();
    if (opts.fabric_config) {
        d.config = *opts.fabric_config;
    } else {
        d.config = dir.fabric_config();
        write_file_atomic(d.config, default_fabric_config(opts.vms));
    }
    // A fresh fabric: no stale socket, no ports of an earlier run.
    remove_if_exists(d.socket);
    remove_if_exists(d.segment);
    state.partlinkd = d;
    dir.save_state(state);

    SpawnOptions spawn;
    spawn.output_file = d.log;
    spawn.new_session = true;
    Process daemon =
        Process::spawn(partlinkd_argv(layout.partlinkd, d.socket, d.segment, d.config), spawn);
    state.partlinkd->pid = daemon.pid();
    dir.save_state(state);
    wait_until_listening(daemon, d.log, d.socket, kPartlinkdStartTimeout, InterruptWatch::check);
    out.info("network partlink: partlinkd pid " + std::to_string(daemon.pid()) + " on " +
             d.socket.string() + " (config " + d.config.string() + ", log " + d.log.string() + ")");
    return daemon;
}

// Watches a serial console file for the guest init's ready line.
class ReadyLineWatch {
public:
    ReadyLineWatch(fs::path console, const std::string& name)
        : console_(std::move(console))
        , needle_("partlink-guest: ready name=" + name) {}

    bool seen() {
        if (seen_)
            return true;
        std::ifstream in(console_, std::ios::binary);
        if (!in)
            return false;
        in.seekg(0, std::ios::end);
        auto size = static_cast<std::size_t>(in.tellg());
        if (size < offset_) { // truncated: start over
            offset_ = 0;
            window_.clear();
        }
        in.seekg(static_cast<std::streamoff>(offset_));
        std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        offset_ += chunk.size();
        window_ += chunk;
        for (std::size_t pos = window_.find(needle_); pos != std::string::npos;
             pos = window_.find(needle_, pos + 1)) {
            std::size_t after = pos + needle_.size();
            // "name=vm1" must not match "name=vm12".
            if (after < window_.size() &&
                (window_[after] == ' ' || window_[after] == '\r' || window_[after] == '\n'))
                return seen_ = true;
        }
        // Keep enough to find a needle split across two reads.
        if (window_.size() > 2 * needle_.size())
            window_.erase(0, window_.size() - 2 * needle_.size());
        return false;
    }

private:
    fs::path console_;
    std::string needle_;
    std::size_t offset_ = 0;
    std::string window_;
    bool seen_ = false;
};

// One partition on its way up: its QEMU, and the ssh attempts that tell
// when it has arrived.
struct Booting {
    Booting(PartitionRecord& r, Process& q)
        : record(&r)
        , qemu(&q)
        , started(Clock::now())
        , ready(r.console, r.name)
        , next_ssh(started + kSshRetryBeforeReady) {}

    PartitionRecord* record;
    Process* qemu;
    Clock::time_point started;
    ReadyLineWatch ready;
    std::optional<Process> ssh_probe;
    Clock::time_point ssh_probe_started;
    Clock::time_point next_ssh;
    bool ready_before = false;
    bool up = false;
};

std::string boot_failure(const PartitionRecord& p, const std::string& what,
                         const std::string& extra = {}) {
    std::string msg = p.name + " " + what + "\n";
    if (!extra.empty())
        msg += extra + "\n";
    msg += "see " + p.log.string() + " (QEMU) and " + p.console.string() + " (console)\n";
    msg += "--- last " + std::to_string(kTailLines) + " lines of " + p.log.string() + " ---\n";
    msg += tail_lines(p.log, kTailLines);
    msg += "--- last " + std::to_string(kTailLines) + " lines of " + p.console.string() + " ---\n";
    msg += tail_lines(p.console, kTailLines);
    return trimmed(msg);
}

void wait_until_up(std::vector<Booting>& vms, const Layout& layout, const RunDir& dir,
                   std::chrono::seconds timeout, const Output& out) {
    const auto deadline = Clock::now() + timeout;
    std::size_t remaining = vms.size();
    while (remaining > 0) {
        InterruptWatch::check();
        auto now = Clock::now();
        for (auto& vm : vms) {
            if (vm.up)
                continue;
            PartitionRecord& p = *vm.record;
            if (auto status = vm.qemu->poll())
                throw Error(boot_failure(p, "did not come up: QEMU " + status->describe()));
            bool ready = vm.ready.seen();
            // The ready line means sshd listens now: an attempt begun before
            // it may sit out its whole connect timeout, so start afresh.
            bool just_ready = ready && !vm.ready_before;
            vm.ready_before = ready;
            if (just_ready)
                vm.ssh_probe.reset(); // killed and reaped by ~Process
            if (vm.ssh_probe) {
                if (auto status = vm.ssh_probe->poll()) {
                    vm.ssh_probe.reset();
                    if (status->success()) {
                        vm.up = true;
                        --remaining;
                        out.item(p.name + ": up (" + seconds(now - vm.started) + ")");
                        continue;
                    }
                    vm.next_ssh = now + (ready ? kSshRetryAfterReady : kSshRetryBeforeReady);
                } else if (now - vm.ssh_probe_started > kSshProbeTimeout) {
                    vm.ssh_probe.reset(); // killed and reaped by ~Process
                    vm.next_ssh = now;
                }
            }
            if (!vm.ssh_probe && (just_ready || now >= vm.next_ssh)) {
                SshTarget target{layout.ssh_identity(), layout.ssh_known_hosts(),
                                 static_cast<std::uint16_t>(p.ssh_port)};
                vm.ssh_probe = spawn_ssh_probe(target, dir.ssh_probe_log(p.index));
                vm.ssh_probe_started = now;
            }
        }
        if (remaining == 0)
            break;
        if (Clock::now() >= deadline) {
            for (auto& vm : vms) {
                if (vm.up)
                    continue;
                std::string last_ssh = "last ssh attempt: ";
                auto text = read_text_file(dir.ssh_probe_log(vm.record->index));
                if (vm.ssh_probe)
                    last_ssh += "still connecting";
                else if (text && !trimmed(*text).empty())
                    last_ssh += trimmed(*text);
                else
                    last_ssh += "none yet (waiting for the console's ready line)";
                throw Error(boot_failure(*vm.record,
                                         "did not answer ssh within " +
                                             std::to_string(timeout.count()) + " s" +
                                             (vm.ready.seen() ? " (its console says ready)" : ""),
                                         last_ssh));
            }
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

} // namespace

void bring_up(const UpOptions& opts, const Layout& layout, const RunDir& dir, const Output& out) {
    const auto started = Clock::now();
    // QEMU creates its QMP socket under the run dir; sun_path is 108 bytes.
    if (dir.qmp_socket(kMaxVms).string().size() >= 108 ||
        dir.partlinkd_socket().string().size() >= 108)
        throw Error("run directory path " + dir.path().string() +
                    " is too long for QEMU's unix sockets; use a shorter --run-dir");
    RunDirLock lock = RunDirLock::acquire_or_fail(dir, RunDirLock::Mode::Exclusive);
    InterruptWatch interrupts;
    refuse_or_clean_up(dir, out);

    // Ports first: a port in use is a quicker answer than the KVM probe.
    std::vector<PortReservation> ports = reserve_ports(opts);

    ProbeSetup probe{layout.qemu,   layout.firmware_dirs(), dir.probe_bios(),   dir.probe_log(),
                     kProbeTimeout, layout.kernel(),        dir.probe_console()};
    Accel accel = choose_accel(opts.accel, probe, out);
    InterruptWatch::check();

    RunState state = initial_state(opts, accel, dir, ports);
    dir.save_state(state);

    // Declared outside the try block so that the QEMUs are still ours (and
    // still running) when the catch block tears down in order.
    std::vector<Process> qemus;
    qemus.reserve(state.partitions.size());
    std::optional<Process> daemon;
    try {
        if (opts.net == NetMode::Partlink)
            daemon = start_partlinkd(state, opts, layout, dir, out);
        if (opts.net == NetMode::VirtioTap)
            set_up_tap_network(state, dir, out);
        if (opts.net == NetMode::VirtioSocket) {
            remove_if_exists(dir.data_socket());
            out.info("network virtio-socket: " + dir.data_socket().string() +
                     " (vm1 listens, vm2 connects)");
        }
        out.info("starting " + std::to_string(opts.vms) + " partition" +
                 (opts.vms == 1 ? "" : "s") + " (" + std::to_string(opts.mem_mib) + " MiB, " +
                 std::to_string(opts.cpus) + " CPU" + (opts.cpus == 1 ? "" : "s") + " each) in " +
                 dir.path().string());

        std::vector<Booting> booting;
        for (auto& p : state.partitions) {
            InterruptWatch::check();
            // An old console would show an old "ready" line before QEMU
            // truncates it.
            remove_if_exists(p.console);
            remove_if_exists(p.pidfile);
            remove_if_exists(p.qmp);
            SpawnOptions spawn;
            spawn.output_file = p.log;
            spawn.new_session = true;
            ports[static_cast<std::size_t>(p.index - 1)].release();
            qemus.push_back(Process::spawn(build_qemu_argv(vm_spec(state, p, layout, dir)), spawn));
            p.qemu_pid = qemus.back().pid();
            dir.save_state(state);
            out.item(p.name + ": booting… (QEMU pid " + std::to_string(*p.qemu_pid) +
                     ", ssh 127.0.0.1:" + std::to_string(p.ssh_port) + ")");
            booting.emplace_back(p, qemus.back());
        }

        wait_until_up(booting, layout, dir, opts.timeout, out);

        for (auto& p : state.partitions) {
            p.state = "running";
            remove_if_exists(dir.ssh_probe_log(p.index));
        }
        dir.save_state(state);
    } catch (const std::exception&) {
        out.info("up failed; stopping everything it started");
        tear_down(dir, out);
        throw;
    }
    // Success: the QEMUs outlive us.
    for (auto& q : qemus)
        q.detach();
    if (daemon)
        daemon->detach();
    out.info(std::to_string(opts.vms) + " partition" + (opts.vms == 1 ? "" : "s") + " up in " +
             seconds(Clock::now() - started) + " (accel " + std::string(to_string(accel)) +
             ", net " + std::string(to_string(opts.net)) + "); try `partlink ssh vm1`");
}

} // namespace partlink
