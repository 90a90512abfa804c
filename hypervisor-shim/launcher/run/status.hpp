// What is running in a run directory, checked live rather than trusted from
// the state file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "run/capacity_setup.hpp"
#include "run/fabric_status.hpp"
#include "run/run_dir.hpp"
#include "run/wlm_logs.hpp"

namespace partlink {

struct PartitionStatus {
    PartitionRecord record;
    // "running", "starting" (an `up` or `start` is under way), "stopped" (by
    // `partlink stop`) or "dead" (its QEMU is gone otherwise)
    std::string live_state;
    // --net partlink: its port of the fabric (down and zero if the segment
    // cannot be read).
    std::optional<PortStatus> fabric;
    // Its CPU cgroup: entitlement, cap, usage, throttling (nothing with
    // `up --no-cgroups`).
    std::optional<CapacityStatus> capacity;
    // Its last control chart point (RUN/wlm-chart.jsonl): S and the chart
    // state; nothing before the WLM manager reported on it.
    std::optional<capacity::ChartRecord> chart;
    // The guest's RAM as its balloon leaves it (QMP query-balloon), in MiB;
    // nothing unless it is running and its QEMU answered.
    std::optional<std::uint64_t> memory_mib;
};

struct DaemonStatus {
    std::optional<pid_t> pid;
    bool running = false;
    std::filesystem::path socket;
    std::filesystem::path segment;
    std::filesystem::path log;
};

struct StatusReport {
    std::filesystem::path run_dir;
    int boot_memory_mib = 0;    // what every guest booted with (`up --mem`)
    std::optional<NetMode> net; // nothing if nothing is up
    std::vector<PartitionStatus> partitions;
    std::optional<DaemonStatus> partlinkd; // --net partlink
    std::string fabric_error;              // why the fabric segment could not be read
    bool busy = false;                     // another command holds the lock
};

// `busy`: an `up`, `start`, `stop` or `down` is under way (the caller could not take the lock).
StatusReport collect_status(const std::filesystem::path& run_dir,
                            const std::optional<RunState>& state, bool busy);
std::string live_state(const PartitionRecord& record, const std::filesystem::path& run_dir,
                       bool busy);

std::string render_status_table(const StatusReport& report);
nlohmann::ordered_json render_status_json(const StatusReport& report);

} // namespace partlink
