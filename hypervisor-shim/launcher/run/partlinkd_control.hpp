// partlinkd, the fabric daemon of a `--net partlink` run: its command line
// and default configuration, waiting until it listens, and finding and
// stopping it, also after a launcher that was killed.  Like a QEMU, a pid
// is only trusted once /proc/PID/cmdline shows it serves this run directory.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

#include "host/process.hpp"
#include "run/run_dir.hpp"

namespace partlink {

inline constexpr std::chrono::seconds kPartlinkdStartTimeout{10};

// `capacity`: RUN/capacity.json (capacity::RunCapacityConfig) when the
// partitions are in CPU cgroups; without it partlinkd refuses directives.
// `segments`: the shared segments' table and state files (`up --segments`).
std::vector<std::string> partlinkd_argv(
    const std::filesystem::path& exe, const std::filesystem::path& socket,
    const std::filesystem::path& segment, const std::filesystem::path& config,
    const std::optional<std::filesystem::path>& capacity = std::nullopt,
    const std::optional<std::pair<std::filesystem::path, std::filesystem::path>>& segments =
        std::nullopt);

// The configuration `up` writes without --fabric-config: one network of
// every partition, `wlm` (the policy's privileged partition) allowed to
// send directives for the workload manager:
//   {"networks": {"default": ["vm1", ..., "vmN"]}, "wlm": "vm1"}
std::string default_fabric_config(int vms, const std::string& wlm = "vm1");

// True if `cmdline` passes `--socket SOCKET` (or --socket=SOCKET), SOCKET
// being RUN/partlinkd.sock of `run_dir`.
bool cmdline_is_our_partlinkd(const std::vector<std::string>& cmdline,
                              const std::filesystem::path& run_dir);
bool is_our_partlinkd(pid_t pid, const std::filesystem::path& run_dir);

// Every live partlinkd of the run: the state's pid and a scan of /proc.
std::vector<pid_t> find_our_partlinkds(const RunDir& dir, const std::optional<RunState>& state);

struct DaemonStopOutcome {
    pid_t pid = 0;
    bool stopped = false;
    std::string how; // "SIGTERM", "SIGKILL", "already gone", or why it failed
};

// SIGTERM, then SIGKILL to those still there after `after_term`.
std::vector<DaemonStopOutcome>
stop_partlinkds(const std::vector<pid_t>& pids, const std::filesystem::path& run_dir,
                std::chrono::milliseconds after_term = std::chrono::seconds(3),
                std::chrono::milliseconds after_kill = std::chrono::seconds(3));

// Waits until partlinkd, just spawned with its output to `log`, accepts
// connections on `socket`.  Throws an Error with the log's tail if
// it exits first or does not get there within `timeout`.  `check` runs at
// every poll (to throw on ^C).
void wait_until_listening(Process& daemon, const std::filesystem::path& log,
                          const std::filesystem::path& socket, std::chrono::milliseconds timeout,
                          const std::function<void()>& check = {});

} // namespace partlink
