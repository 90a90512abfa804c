// The groups of one run: <root>/partlink/<run-id>/<partition>.  Finding the
// host's CPU hierarchy, making a partition's group afresh, removing a run's
// groups (patiently: a QEMU just killed may still be leaving), and what a
// group holds now.  The launcher places QEMUs with these; partlinkd then
// moves the caps.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup.hpp"

namespace partlink::capacity {

// The host's controller, its files checked for write access.  Throws,
// naming the path and what to do.
std::shared_ptr<CpuController> open_checked_cpu_controller();
// The same without the check; nothing if the host has no CPU controller.
std::shared_ptr<CpuController> find_cpu_controller();

// <root>/partlink/<run_id>.
std::filesystem::path run_group(const CpuController& controller, std::string_view run_id);

// Creates `group` (absolute, under the root), first emptying and removing a
// leftover of the same name.
std::filesystem::path fresh_group(CpuController& controller, const std::filesystem::path& group);

// Removes `group`, retrying for `grace` while it is busy; never throws,
// returns what failed.
inline constexpr std::chrono::milliseconds kRemoveGrace{5000};
std::vector<std::string> remove_group_patiently(const std::filesystem::path& group,
                                                CpuController& controller,
                                                std::chrono::milliseconds grace = kRemoveGrace);

// Removes `groups` and every group found under `run_groups`, then the run
// groups themselves.  Returns what it removed; adds failures to `errors`.
std::vector<std::filesystem::path>
remove_run_groups(const std::set<std::filesystem::path>& run_groups,
                  std::set<std::filesystem::path> groups, CpuController& controller,
                  std::vector<std::string>& errors, std::chrono::milliseconds grace = kRemoveGrace);

// What a group holds now: cap, weight, usage; `error` if it cannot be read.
struct GroupState {
    bool exists = false;
    std::optional<CpuCap> cap;
    std::optional<std::uint32_t> weight;
    std::optional<CpuStat> stat;
    std::string error;
};
GroupState read_group(const std::filesystem::path& group, const CpuController* controller);

} // namespace partlink::capacity
