// Each partition's QEMU in its own CPU cgroup, <cpu root>/partlink/<run-id>/vmN
// (run-id: the run directory's hash, as in the bridge and tap names), capped
// at its entitlement under the run's policy (`up --policy FILE`, or the
// default one: an equal share of the host's CPUs).  The cgroup work itself is the capacity
// library's; this is where the launcher's runs meet it.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capacity/cgroup.hpp"
#include "capacity/policy.hpp"
#include "cli/output.hpp"
#include "run/state.hpp"

namespace partlink {

using CpuControllerPtr = std::shared_ptr<capacity::CpuController>;

// The host's CPU hierarchy, checked for write access, for `up`.  Throws an
// Error naming the path and what to do (including `--no-cgroups`).
CpuControllerPtr open_cpu_cgroups();
// The same without the access check, for `down` and `status`; nothing if
// the host has no CPU controller.
CpuControllerPtr find_cpu_cgroups();

// <root>/partlink/<run-id> of the run in `run_dir`.
std::filesystem::path cgroup_run_group(const capacity::CpuController& controller,
                                       const std::filesystem::path& run_dir);

// Records in `state` (without touching the host) the run's group and each
// partition's group, entitlement, weight, min and max under `policy`, which
// must name every partition of the run (check_policy_for_run).
void plan_cgroups(RunState& state, const capacity::CpuController& controller,
                  const capacity::Policy& policy);
// The same under the default policy for `host_cpus`.  Throws if the host is
// too small for it.
void plan_cgroups(RunState& state, const capacity::CpuController& controller, double host_cpus);

// Creates the planned group of every partition (or of `only` one), replacing
// a leftover of the same name, and applies its cap and weight.
void create_cgroups(RunState& state, capacity::CpuController& controller);
void create_cgroup(const PartitionRecord& p, capacity::CpuController& controller);

// Moves QEMU (every thread) into its partition's group.
void move_into_cgroup(const PartitionRecord& p, pid_t pid, capacity::CpuController& controller);

// Removes one partition's group (after its QEMU is gone), retrying for
// `grace` while a QEMU just killed is still exiting in it; never throws,
// returns what failed.
inline constexpr std::chrono::milliseconds kCgroupRemoveGrace{5000};
std::vector<std::string>
remove_partition_cgroup(const std::filesystem::path& group, capacity::CpuController& controller,
                        std::chrono::milliseconds grace = kCgroupRemoveGrace);

// Removes every group of the run, then the run's group.  Finds them from
// `state` and by scanning <root>/partlink/<run-id>; returns what it removed
// and adds failures to `errors`.
std::vector<std::filesystem::path>
remove_run_cgroups(const std::filesystem::path& run_dir, const std::optional<RunState>& state,
                   capacity::CpuController& controller, std::vector<std::string>& errors,
                   std::chrono::milliseconds grace = kCgroupRemoveGrace);

// What `status` shows per partition.
struct CapacityStatus {
    std::filesystem::path group;
    double entitlement_cpus = 0;
    std::optional<double> min_cpus; // the policy's bounds, if the state has them
    std::optional<double> max_cpus;
    std::uint32_t weight = 0;
    bool exists = false;
    std::optional<capacity::CpuCap> cap;
    std::optional<capacity::CpuStat> stat;
    std::string error;
};
CapacityStatus capacity_status(const CgroupRecord& record,
                               const capacity::CpuController* controller);

} // namespace partlink
