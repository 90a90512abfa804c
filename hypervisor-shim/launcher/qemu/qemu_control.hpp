// Finding and stopping the QEMU processes of a run directory.  A pid from a
// state file or pidfile is only trusted after /proc/PID/cmdline shows that
// it is a QEMU started for this run directory: pids get reused.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "run/run_dir.hpp"

namespace partlink {

// True if `cmdline` is a qemu-system-* whose arguments name a file in
// `run_dir` (its console, QMP socket, pidfile or probe BIOS).
bool cmdline_is_our_qemu(const std::vector<std::string>& cmdline,
                         const std::filesystem::path& run_dir);
bool is_our_qemu(pid_t pid, const std::filesystem::path& run_dir);
// "vmN" from "-name vmN,...", else "qemu".
std::string qemu_name_from_cmdline(const std::vector<std::string>& cmdline);

struct QemuInstance {
    pid_t pid = 0;
    std::string name;
    std::filesystem::path qmp; // empty if it has none (the accel probe)
};

// Every live QEMU of the run: the state's pids, the pidfiles' pids and a scan
// of /proc, so that a run whose launcher was killed before it wrote its
// state is found too.
std::vector<QemuInstance> find_our_qemus(const RunDir& dir, const std::optional<RunState>& state);

struct StopTimings {
    std::chrono::milliseconds after_quit{3000};
    std::chrono::milliseconds after_term{3000};
    std::chrono::milliseconds after_kill{3000};
};

struct StopOutcome {
    QemuInstance qemu;
    bool stopped = false;
    std::string how; // "QMP quit", "SIGTERM", "SIGKILL", or why it failed
};

// QMP quit to all, then SIGTERM to those still there, then SIGKILL.
std::vector<StopOutcome> stop_qemus(const std::vector<QemuInstance>& qemus,
                                    const std::filesystem::path& run_dir,
                                    const StopTimings& timings = {});

} // namespace partlink
