#include "run/start_stop.hpp"

#include <algorithm>
#include <iterator>

#include "host/net_setup.hpp"
#include "host/ports.hpp"
#include "qemu/qemu_control.hpp"
#include "run/boot.hpp"
#include "run/capacity_setup.hpp"
#include "run/partlinkd_control.hpp"
#include "text.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = BootClock;

namespace {

constexpr auto kFailedQemuGrace = 3s;

RunState load_running_state(const RunDir& dir) {
    std::optional<RunState> state;
    try {
        state = dir.load_state();
    } catch (const StateCorrupt& e) {
        throw Error(dir.state_file().string() + " is corrupt (" + e.reason() +
                    "); run `partlink down` to clean up");
    }
    if (!state || state->partitions.empty())
        throw Error("nothing is up in " + dir.path().string() + "; run `partlink up` first");
    return std::move(*state);
}

PartitionRecord& find_partition(RunState& state, const std::string& vm) {
    PartitionRecord* p = state.find(vm);
    if (!p)
        throw UsageError("no partition named '" + vm + "' (partitions: " + join(state.names()) +
                         ")");
    return *p;
}

// The live QEMUs of partition `p`: the one its record names, and any other
// QEMU of this run directory that calls itself by its name.
std::vector<QemuInstance> qemus_of(const RunDir& dir, const RunState& state,
                                   const PartitionRecord& p) {
    std::vector<QemuInstance> all = find_our_qemus(dir, state);
    std::vector<QemuInstance> mine;
    std::copy_if(all.begin(), all.end(), std::back_inserter(mine),
                 [&](const QemuInstance& q) { return q.name == p.name; });
    return mine;
}

// --net partlink: the QEMU joins the running partlinkd, which must be there.
void require_partlinkd(const RunState& state, const RunDir& dir, const PartitionRecord& p) {
    const auto& d = state.partlinkd;
    if (d && d->pid && is_our_partlinkd(*d->pid, dir.path()))
        return;
    std::string why = !d || !d->pid ? "partlinkd was never started"
                                    : "partlinkd is not running (pid " + std::to_string(*d->pid) +
                                          " is gone; see " + d->log.string() + ")";
    throw Error(why + ", so " + p.name +
                " would have no fabric to join; run `partlink down` and `partlink up`");
}

// --net virtio-tap: the QEMU opens its tap on the run's bridge.  `stop`
// leaves the tap in place; if someone deleted it, it is made again.
std::string bridge_of(const RunState& state, const RunDir& dir) {
    return state.bridge.value_or(IfNames::for_run_dir(dir.path()).bridge());
}

void require_bridge(const RunState& state, const RunDir& dir, const PartitionRecord& p) {
    const std::string bridge = bridge_of(state, dir);
    if (!interface_exists(bridge))
        throw Error("the run's bridge " + bridge + " is gone, so " + p.name +
                    " would have no network to join; run `partlink down` and `partlink up`");
}

void make_tap_if_gone(RunState& state, PartitionRecord& p, const RunDir& dir, const Output& out) {
    if (p.taps.empty()) {
        p.taps = {IfNames::for_run_dir(dir.path()).tap(p.index)};
        dir.save_state(state);
    }
    const std::string& tap = p.taps.front();
    if (interface_exists(tap))
        return;
    const std::string bridge = bridge_of(state, dir);
    create_tap(tap, bridge);
    out.item(p.name + ": tap " + tap + " was gone; made it again on " + bridge);
}

// The partition's own ssh port if it is still free, else another one (and
// the state says so).
PortReservation reserve_ssh_port(RunState& state, PartitionRecord& p, const RunDir& dir,
                                 const Output& out) {
    if (p.ssh_port > 0) {
        try {
            return PortReservation::exact(static_cast<std::uint16_t>(p.ssh_port));
        } catch (const Error&) {
        }
    }
    PortReservation port = PortReservation::any();
    out.item(p.name + ": ssh port " + std::to_string(p.ssh_port) + " is taken now; using " +
             std::to_string(port.port()));
    p.ssh_port = port.port();
    dir.save_state(state);
    return port;
}

} // namespace

void start_partition(const StartOptions& opts, const Layout& layout, const RunDir& dir,
                     const Output& out) {
    const auto started = Clock::now();
    RunDirLock lock = RunDirLock::acquire_or_fail(dir, RunDirLock::Mode::Exclusive);
    InterruptWatch interrupts;
    RunState state = load_running_state(dir);
    PartitionRecord& p = find_partition(state, opts.vm);
    if (auto running = qemus_of(dir, state, p); !running.empty())
        throw Error(p.name + " is running (pid " + std::to_string(running.front().pid) +
                    "); stop it first with `partlink stop " + p.name + "`");
    layout.require_qemu();
    layout.require_images();

    // What it attaches to must be there: refused before anything changes.
    if (p.net == NetMode::Partlink)
        require_partlinkd(state, dir, p);
    if (p.net == NetMode::VirtioTap)
        require_bridge(state, dir, p);

    std::string network = std::string(to_string(p.net));
    if (p.net == NetMode::Partlink)
        network += ", partlinkd pid " + std::to_string(*state.partlinkd->pid);
    out.info("starting " + p.name + " again (" + std::to_string(state.settings.mem_mib) + " MiB, " +
             std::to_string(state.settings.cpus) + " CPU" + (state.settings.cpus == 1 ? "" : "s") +
             ", accel " + std::string(to_string(p.accel)) + ", net " + network + ") in " +
             dir.path().string());

    if (p.net == NetMode::VirtioTap)
        make_tap_if_gone(state, p, dir, out);
    // vm1 listens on the virtio-socket again; nobody else can be listening on it.
    if (p.net == NetMode::VirtioSocket && p.index == 1)
        remove_if_exists(dir.data_socket());
    // Its CPU cgroup again, if `up` gave it one.
    CpuControllerPtr cgroups = p.cgroup ? open_cpu_cgroups() : nullptr;
    PortReservation port = reserve_ssh_port(state, p, dir, out);
    const auto timeout =
        opts.timeout.value_or(std::chrono::seconds(state.settings.timeout_seconds));

    p.state = "starting";
    p.qemu_pid.reset();
    dir.save_state(state);
    // Outside the try block: the QEMU is still ours when the catch block
    // stops it.
    std::vector<BootingPartition> booting;
    try {
        InterruptWatch::check();
        if (cgroups)
            create_cgroup(p, *cgroups);
        booting.push_back(spawn_partition(state, p, port, layout, dir, out, cgroups.get()));
        wait_until_up(booting, layout, dir, timeout, out);
        p.state = "running";
        dir.save_state(state);
    } catch (const std::exception&) {
        out.info("start failed; stopping " + p.name + " again");
        for (auto& vm : booting)
            vm.qemu.terminate(kFailedQemuGrace);
        if (cgroups)
            for (const auto& e : capacity::remove_group_patiently(p.cgroup->path, *cgroups))
                out.warn(e);
        p.state = "failed";
        try {
            dir.save_state(state);
        } catch (const std::exception&) {
            // The error that brought us here is the one to report.
        }
        throw;
    }
    // Success: the QEMU outlives us.
    for (auto& vm : booting)
        vm.qemu.detach();
    out.info(p.name + " up in " + format_seconds(Clock::now() - started) + "; try `partlink ssh " +
             p.name + "`");
}

void stop_partition(const std::string& vm, const RunDir& dir, const Output& out) {
    RunDirLock lock = RunDirLock::acquire_or_fail(dir, RunDirLock::Mode::Exclusive);
    RunState state = load_running_state(dir);
    PartitionRecord& p = find_partition(state, vm);
    std::vector<QemuInstance> qemus = qemus_of(dir, state, p);
    const std::string again = "; `partlink start " + p.name + "` boots it again";
    // After its QEMU is gone, its CPU cgroup goes too (`start` makes it again).
    const auto remove_cgroup = [&] {
        if (!p.cgroup)
            return;
        if (auto cgroups = find_cpu_cgroups())
            for (const auto& e : capacity::remove_group_patiently(p.cgroup->path, *cgroups))
                out.warn(e);
    };
    if (qemus.empty()) {
        std::string was =
            p.state == "stopped" ? " is already stopped" : " is not running (its QEMU is gone)";
        remove_cgroup();
        p.state = "stopped";
        dir.save_state(state);
        out.info(p.name + was + again);
        return;
    }

    out.info("stopping " + p.name + "; the other partitions" +
             (state.partlinkd ? " and partlinkd" : "") + " keep running");
    std::vector<std::string> errors;
    for (const auto& r : stop_qemus(qemus, dir.path())) {
        std::string who = p.name + ": QEMU pid " + std::to_string(r.qemu.pid);
        if (r.how == "already gone")
            continue;
        if (r.stopped)
            out.item(who + " stopped (" + r.how + ")");
        else
            errors.push_back(who + " " + r.how);
    }
    if (!errors.empty())
        throw Error("stop did not finish: " + join(errors));
    remove_cgroup();
    p.state = "stopped";
    p.qemu_pid.reset();
    dir.save_state(state);
    remove_if_exists(p.qmp);
    remove_if_exists(p.pidfile);
    out.info(p.name + " stopped" + again);
}

} // namespace partlink
