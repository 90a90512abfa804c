#include "run/up.hpp"

#include <ctime>
#include <fstream>
#include <unistd.h>

#include "capacity/policy.hpp"
#include "devloop/kernel.hpp"
#include "host/net_setup.hpp"
#include "host/ports.hpp"
#include "host/process.hpp"
#include "host/ssh.hpp"
#include "qemu/accel_probe.hpp"
#include "qemu/qemu_command.hpp"
#include "run/boot.hpp"
#include "run/capacity_setup.hpp"
#include "run/partlinkd_control.hpp"
#include "run/teardown.hpp"
#include "text.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = BootClock;

namespace {

constexpr auto kProbeTimeout = 3s;

std::string utc_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
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

std::vector<PortReservation> reserve_gdb_ports(const UpOptions& opts) {
    std::vector<PortReservation> ports;
    if (opts.boot.gdb)
        for (int i = 0; i < opts.vms; ++i)
            ports.push_back(PortReservation::any());
    return ports;
}

RunState initial_state(const UpOptions& opts, Accel accel, const RunDir& dir,
                       const std::vector<PortReservation>& ports,
                       const std::vector<PortReservation>& gdb_ports) {
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
        if (!gdb_ports.empty())
            p.gdb_port = gdb_ports[static_cast<std::size_t>(index - 1)].port();
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

// What the run's capacity management starts from: the policy copy, no
// stale capacity configuration, fresh logs.
void prepare_capacity_files(const UpOptions& opts, const RunDir& dir) {
    set_aside_wlm_logs(dir);
    remove_if_exists(dir.capacity_config());
    remove_if_exists(dir.policy_copy());
    if (opts.policy_file) {
        auto text = read_text_file(*opts.policy_file);
        if (!text)
            throw Error("cannot read the capacity policy " + opts.policy_file->string());
        write_file_atomic(dir.policy_copy(), *text);
    }
}

// Starts partlinkd and waits until it listens.  Like an interface, it is
// recorded in the state before it exists, its pid right after.  `policy`:
// the run's capacity policy when the partitions are in cgroups (its
// privileged partition is the fabric's WLM partition, and partlinkd gets
// RUN/capacity.json); nothing with --no-cgroups.
Process start_partlinkd(RunState& state, const UpOptions& opts, const Layout& layout,
                        const RunDir& dir, const std::optional<capacity::Policy>& policy,
                        const Output& out) {
    DaemonRecord d;
    d.socket = dir.partlinkd_socket();
    d.segment = dir.fabric_segment();
    d.log = dir.partlinkd_log();
    if (opts.fabric_config) {
        d.config = *opts.fabric_config;
    } else {
        d.config = dir.fabric_config();
        write_file_atomic(d.config, default_fabric_config(opts.vms, opts.wlm));
    }
    std::optional<fs::path> capacity;
    if (policy)
        capacity = write_run_capacity_config(dir, run_capacity_config(state, *policy, dir));
    // partlinkd serves a copy, which `segments load` replaces.
    std::optional<std::pair<fs::path, fs::path>> segments;
    if (opts.segments) {
        std::ifstream in(*opts.segments, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        write_file_atomic(dir.segments_table(), text);
        remove_if_exists(dir.segments_state());
        segments = std::pair{dir.segments_table(), dir.segments_state()};
    }
    // A fresh fabric: no stale socket, no ports of an earlier run.
    remove_if_exists(d.socket);
    remove_if_exists(d.segment);
    state.partlinkd = d;
    dir.save_state(state);

    SpawnOptions spawn;
    spawn.output_file = d.log;
    spawn.new_session = true;
    Process daemon = Process::spawn(
        partlinkd_argv(layout.partlinkd, d.socket, d.segment, d.config, capacity, segments), spawn);
    state.partlinkd->pid = daemon.pid();
    dir.save_state(state);
    wait_until_listening(daemon, d.log, d.socket, kPartlinkdStartTimeout, InterruptWatch::check);
    out.info("network partlink: partlinkd pid " + std::to_string(daemon.pid()) + " on " +
             d.socket.string() + " (config " + d.config.string() +
             (capacity ? ", capacity " + capacity->string() : std::string()) +
             (segments ? ", segments " + segments->first.string() : std::string()) + ", log " +
             d.log.string() + ")");
    return daemon;
}

// What the developer loop changed about the boot, if anything.
void describe_boot(const RunState& state, const Output& out) {
    const BootRecord& b = state.boot;
    if (b.options.kernel)
        out.info("kernel " + b.release + " from " + b.options.kernel->string() +
                 "; `make driver` builds partlink.ko against " + b.kdir.string());
    for (const auto& share : b.options.shares)
        out.info("share " + share.dir.string() + " at " + share_mount_point(share) + " (" +
                 (share.writable ? "read-write" : "read-only") + ") in every partition");
    std::vector<std::string> stubs;
    for (const auto& p : state.partitions)
        if (p.gdb_port)
            stubs.push_back(p.name + " 127.0.0.1:" + std::to_string(*p.gdb_port));
    if (!stubs.empty())
        out.info("gdbstubs: " + join(stubs) + "; try `partlink gdb vm1`");
}

void check_socket_paths(const RunDir& dir) {
    // QEMU creates its sockets under the run dir; sun_path is 108 bytes.
    for (const fs::path& socket :
         {dir.hv_qmp_socket(kMaxVms), dir.console_socket(kMaxVms), dir.partlinkd_socket()})
        if (socket.string().size() >= 108)
            throw Error("run directory path " + dir.path().string() +
                        " is too long for QEMU's unix sockets; use a shorter --run-dir");
}

} // namespace

void print_qemu_command_lines(const UpOptions& opts, const Layout& layout, const RunDir& dir,
                              const Output& out) {
    check_socket_paths(dir);
    // Nothing starts, so no probe: auto shows TCG, which the probe picks
    // wherever KVM hangs.
    const Accel accel = opts.accel == Accel::Auto ? Accel::Tcg : opts.accel;
    std::vector<PortReservation> ports = reserve_ports(opts);
    std::vector<PortReservation> gdb_ports = reserve_gdb_ports(opts);
    RunState state = initial_state(opts, accel, dir, ports, gdb_ports);
    state.boot = resolve_boot(opts.boot, layout, out);
    out.info("dry run: the QEMU command lines `up` would run (accel " +
             std::string(to_string(accel)) +
             (opts.accel == Accel::Auto ? ", or kvm if the probe boots with it" : "") +
             "; ports free now)");
    for (const auto& p : state.partitions) {
        auto argv = build_qemu_argv(vm_spec(state, p, layout, dir));
        out.item(p.name + ": " + shell_join(argv));
    }
}

void bring_up(const UpOptions& opts, const Layout& layout, const RunDir& dir, const Output& out) {
    const auto started = Clock::now();
    check_socket_paths(dir);
    RunDirLock lock = RunDirLock::acquire_or_fail(dir, RunDirLock::Mode::Exclusive);
    InterruptWatch interrupts;
    refuse_or_clean_up(dir, out);
    prepare_capacity_files(opts, dir);
    // Cgroups next: without permission, say so before anything boots.
    CpuControllerPtr cgroups = opts.cgroups ? open_cpu_cgroups() : nullptr;

    // Ports first: a port in use is a quicker answer than the KVM probe.
    std::vector<PortReservation> ports = reserve_ports(opts);
    std::vector<PortReservation> gdb_ports = reserve_gdb_ports(opts);
    // Before the probe: a kernel that cannot be used is refused first.
    BootRecord boot = resolve_boot(opts.boot, layout, out);

    ProbeSetup probe{layout.qemu,   layout.firmware_dirs(), dir.probe_bios(),   dir.probe_log(),
                     kProbeTimeout, layout.kernel(),        dir.probe_console()};
    Accel accel = choose_accel(opts.accel, probe, out);
    InterruptWatch::check();

    RunState state = initial_state(opts, accel, dir, ports, gdb_ports);
    state.boot = std::move(boot);
    // `make driver` builds partlink.ko against the kernel the run boots.
    write_file_atomic(dir.kdir_file(), state.boot.kdir.string() + "\n");
    std::optional<capacity::Policy> policy;
    if (cgroups) {
        try {
            policy = opts.policy
                         ? *opts.policy
                         : default_run_policy(opts.vms, capacity::host_cpu_count(), opts.wlm);
            plan_cgroups(state, *cgroups, *policy);
        } catch (const capacity::PolicyError& e) {
            throw Error(std::string(e.what()) +
                        "; or run `partlink up --no-cgroups` without CPU capacity control");
        }
    }
    dir.save_state(state);

    // Declared outside the try block so that the QEMUs are still ours (and
    // still running) when the catch block tears down in order.
    std::vector<BootingPartition> booting;
    booting.reserve(state.partitions.size());
    std::optional<Process> daemon;
    try {
        // The groups before partlinkd, which enforces caps on them.
        if (cgroups) {
            create_cgroups(state, *cgroups);
            const auto& first = *state.partitions.front().cgroup;
            out.info("cpu cgroups (" + std::string(capacity::to_string(cgroups->version())) +
                     ") under " + state.cgroup_run->string() + ": " +
                     (opts.policy_file ? "policy " + opts.policy_file->string() + " (copied to " +
                                             dir.policy_copy().string() + "), WLM partition " +
                                             policy->privileged
                                       : cgroups->cap(first.path).describe() +
                                             " each, the default policy's equal share, WLM "
                                             "partition " +
                                             policy->privileged));
        }
        if (opts.net == NetMode::Partlink)
            daemon = start_partlinkd(state, opts, layout, dir, policy, out);
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

        for (auto& p : state.partitions) {
            InterruptWatch::check();
            if (!gdb_ports.empty())
                gdb_ports[static_cast<std::size_t>(p.index - 1)].release();
            booting.push_back(spawn_partition(state, p,
                                              ports[static_cast<std::size_t>(p.index - 1)], layout,
                                              dir, out, cgroups.get()));
        }

        wait_until_up(booting, layout, dir, opts.timeout, out);

        for (auto& p : state.partitions)
            p.state = "running";
        dir.save_state(state);
    } catch (const std::exception&) {
        out.info("up failed; stopping everything it started");
        tear_down(dir, out);
        throw;
    }
    // Success: the QEMUs outlive us.
    for (auto& vm : booting)
        vm.qemu.detach();
    if (daemon)
        daemon->detach();
    describe_boot(state, out);
    out.info(std::to_string(opts.vms) + " partition" + (opts.vms == 1 ? "" : "s") + " up in " +
             format_seconds(Clock::now() - started) + " (accel " + std::string(to_string(accel)) +
             ", net " + std::string(to_string(opts.net)) + "); try `partlink ssh vm1`");
}

} // namespace partlink
