#include "run/boot.hpp"

#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "host/ssh.hpp"
#include "run/capacity_setup.hpp"
#include "text.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = BootClock;

namespace {

constexpr std::size_t kTailLines = 20;
constexpr auto kPollInterval = 100ms;
// Before the console says the guest is ready, ssh is tried now and then
// anyway, in case an image does not print the ready line.
constexpr auto kSshRetryBeforeReady = 3s;
constexpr auto kSshRetryAfterReady = 500ms;
constexpr auto kSshProbeTimeout = 15s;

volatile sig_atomic_t g_interrupted = 0;

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

// One partition on its way up: the ssh attempts that tell when it has
// arrived.
struct Arrival {
    explicit Arrival(BootingPartition& vm)
        : vm(&vm)
        , ready(vm.record->console, vm.record->name)
        , next_ssh(vm.started + kSshRetryBeforeReady) {}

    BootingPartition* vm;
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

} // namespace

InterruptWatch::InterruptWatch() {
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = [](int sig) {
        g_interrupted = sig;
    };
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i)
        ::sigaction(kSignals[i], &sa, &old_[i]);
}

InterruptWatch::~InterruptWatch() {
    for (std::size_t i = 0; i < kSignals.size(); ++i)
        ::sigaction(kSignals[i], &old_[i], nullptr);
}

void InterruptWatch::check() {
    if (int sig = g_interrupted)
        throw Error(std::string("interrupted by SIG") + sigabbrev_np(sig), 128 + sig);
}

std::string format_seconds(Clock::duration d) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(1);
    s << std::chrono::duration<double>(d).count() << " s";
    return s.str();
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
    spec.kernel = state.boot.kernel.empty() ? layout.kernel() : state.boot.kernel;
    spec.initrd = state.boot.initrd.empty() ? layout.initrd() : state.boot.initrd;
    spec.console_file = p.console;
    spec.console_socket = dir.console_socket(p.index);
    spec.qmp_socket = p.qmp;
    spec.hv_qmp_socket = dir.hv_qmp_socket(p.index);
    spec.pid_file = p.pidfile;
    spec.ssh_port = static_cast<std::uint16_t>(p.ssh_port);
    if (!p.taps.empty())
        spec.tap = p.taps.front();
    spec.data_socket = dir.data_socket();
    spec.data_socket_server = p.index == 1;
    spec.fabric_socket = dir.partlinkd_socket();
    spec.append = state.boot.options.append;
    spec.shares = state.boot.options.shares;
    if (p.gdb_port)
        spec.gdb_port = static_cast<std::uint16_t>(*p.gdb_port);
    spec.extra_args = qemu_args_for(state.boot.options.qemu_args, p.index);
    return spec;
}

BootingPartition spawn_partition(RunState& state, PartitionRecord& p, PortReservation& ssh_port,
                                 const Layout& layout, const RunDir& dir, const Output& out,
                                 capacity::CpuController* cgroups) {
    // An old console would show an old "ready" line before QEMU truncates it.
    remove_if_exists(p.console);
    remove_if_exists(p.pidfile);
    remove_if_exists(p.qmp);
    remove_if_exists(dir.console_socket(p.index));
    SpawnOptions spawn;
    spawn.output_file = p.log;
    spawn.new_session = true;
    ssh_port.release();
    BootingPartition vm{&p, Process::spawn(build_qemu_argv(vm_spec(state, p, layout, dir)), spawn),
                        Clock::now()};
    p.qemu_pid = vm.qemu.pid();
    dir.save_state(state);
    // Before QEMU gets far: threads it starts later are born in the group.
    if (cgroups && p.cgroup)
        move_into_cgroup(p, vm.qemu.pid(), *cgroups);
    std::string where;
    if (cgroups && p.cgroup)
        where = ", cgroup " + p.cgroup->path.string() + " capped at " +
                cgroups->cap(p.cgroup->path).describe();
    out.item(p.name + ": booting… (QEMU pid " + std::to_string(*p.qemu_pid) +
             ", ssh 127.0.0.1:" + std::to_string(p.ssh_port) + where + ")");
    return vm;
}

void wait_until_up(std::vector<BootingPartition>& booting, const Layout& layout, const RunDir& dir,
                   std::chrono::seconds timeout, const Output& out) {
    std::vector<Arrival> vms;
    vms.reserve(booting.size());
    for (auto& b : booting)
        vms.emplace_back(b);
    const auto deadline = Clock::now() + timeout;
    std::size_t remaining = vms.size();
    while (remaining > 0) {
        InterruptWatch::check();
        auto now = Clock::now();
        for (auto& vm : vms) {
            if (vm.up)
                continue;
            PartitionRecord& p = *vm.vm->record;
            if (auto status = vm.vm->qemu.poll())
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
                        out.item(p.name + ": up (" + format_seconds(now - vm.vm->started) + ")");
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
                const PartitionRecord& p = *vm.vm->record;
                std::string last_ssh = "last ssh attempt: ";
                auto text = read_text_file(dir.ssh_probe_log(p.index));
                if (vm.ssh_probe)
                    last_ssh += "still connecting";
                else if (text && !trimmed(*text).empty())
                    last_ssh += trimmed(*text);
                else
                    last_ssh += "none yet (waiting for the console's ready line)";
                throw Error(boot_failure(p,
                                         "did not answer ssh within " +
                                             std::to_string(timeout.count()) + " s" +
                                             (vm.ready.seen() ? " (its console says ready)" : ""),
                                         last_ssh));
            }
        }
        std::this_thread::sleep_for(kPollInterval);
    }
    for (auto& b : booting)
        remove_if_exists(dir.ssh_probe_log(b.record->index));
}

} // namespace partlink
