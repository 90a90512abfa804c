// Booting partitions: what `up` (all of them) and `start` (one of them
// again) share.  Spawning a partition's QEMU from its state record, and
// waiting until the guest answers ssh, with the same progress lines and the
// same failure report (the tails of its QEMU log and console).
#pragma once

#include <array>
#include <chrono>
#include <signal.h>
#include <string>
#include <vector>

#include "capacity/cgroup.hpp"
#include "cli/output.hpp"
#include "host/ports.hpp"
#include "host/process.hpp"
#include "qemu/qemu_command.hpp"
#include "run/layout.hpp"
#include "run/run_dir.hpp"

namespace partlink {

using BootClock = std::chrono::steady_clock;

// ^C (or SIGTERM, SIGHUP) while booting must stop what was started, not
// leave QEMUs behind.  While a watch lives, those signals only set a flag,
// which check() turns into an Error (exit status 128 + the signal).
class InterruptWatch {
public:
    InterruptWatch();
    ~InterruptWatch();
    InterruptWatch(const InterruptWatch&) = delete;
    InterruptWatch& operator=(const InterruptWatch&) = delete;

    static void check();

private:
    static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
    std::array<struct sigaction, 3> old_{};
};

// "6.2 s"
std::string format_seconds(BootClock::duration d);

// QEMU's command line for partition `p` of the run, from its record: the
// same on every boot of it.
VmSpec vm_spec(const RunState& state, const PartitionRecord& p, const Layout& layout,
               const RunDir& dir);

// A partition whose QEMU runs, on its way up.
struct BootingPartition {
    PartitionRecord* record; // in the state being booted
    Process qemu;
    BootClock::time_point started;
};

// Spawns partition `p`'s QEMU: removes its old console (an old "ready" line
// would fool the wait), pidfile and QMP socket, releases `ssh_port` for QEMU
// to bind, records the pid in the state (saved) and prints
// "vmN: booting… (QEMU pid P, ssh 127.0.0.1:PORT)".  With `cgroups`, QEMU
// is moved into the partition's CPU cgroup (made beforehand) right away.
BootingPartition spawn_partition(RunState& state, PartitionRecord& p, PortReservation& ssh_port,
                                 const Layout& layout, const RunDir& dir, const Output& out,
                                 capacity::CpuController* cgroups = nullptr);

// Waits until every partition answers ssh, printing "vmN: up (6.2 s)" as each
// does.  Throws an Error with the tails of the QEMU log and the console if a
// QEMU exits or a guest does not answer within `timeout`; checks for ^C.
void wait_until_up(std::vector<BootingPartition>& vms, const Layout& layout, const RunDir& dir,
                   std::chrono::seconds timeout, const Output& out);

} // namespace partlink
