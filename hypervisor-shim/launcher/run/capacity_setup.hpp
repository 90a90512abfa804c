// The capacity side of a run: which policy it gets (the operator's
// --policy file or the default one), whether it fits the run's partitions,
// each partition's QEMU in its own CPU cgroup, <cpu root>/partlink/<run-id>/vmN
// (run-id: the run directory's hash, as in the bridge and tap names), capped
// at its entitlement, and the RUN/capacity.json that hands the policy, the
// cgroups and the log files to partlinkd (`partlinkd --capacity FILE`).
// The cgroup work itself is the capacity library's (capacity/run_groups).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capacity/cgroup.hpp"
#include "capacity/policy.hpp"
#include "capacity/run_config.hpp"
#include "capacity/run_groups.hpp"
#include "run/run_dir.hpp"
#include "run/state.hpp"

namespace partlink {

// What keeps `policy` from describing exactly the partitions vm1..vm`vms`
// of a run whose guests boot with `mem_mib` each: one line per problem,
// none if it fits.
std::vector<std::string> policy_run_problems(const capacity::Policy& policy, int vms, int mem_mib);
// Throws a UsageError naming `source` and listing every problem.
void check_policy_for_run(const capacity::Policy& policy, int vms, int mem_mib,
                          const std::string& source);

// The policy of a run without --policy: the default one (an equal share
// each, min 0.1, max every host CPU), with the run's WLM partition `wlm`
// (UpOptions::wlm, one of vm1..vmN).  Throws capacity::PolicyError if the
// host is too small for it.
capacity::Policy default_run_policy(int vms, double host_cpus, const std::string& wlm);

// The configuration partlinkd gets: `policy`, the planned cgroup of every
// partition of `state` (plan_cgroups ran), the audit and chart logs in `dir`,
// and each partition's balloon (partlinkd's QMP socket, its boot RAM).
capacity::RunCapacityConfig run_capacity_config(const RunState& state,
                                                const capacity::Policy& policy, const RunDir& dir);
// Writes it to RUN/capacity.json (atomically) and returns that path.
std::filesystem::path write_run_capacity_config(const RunDir& dir,
                                                const capacity::RunCapacityConfig& config);

// A new run starts new logs: the audit and chart logs of an earlier run in
// the same directory become *.previous.jsonl (one generation is kept).
void set_aside_wlm_logs(const RunDir& dir);

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

// Removes every group of the run, then the run's group.  Finds them from
// `state` and by scanning <root>/partlink/<run-id>; returns what it removed
// and adds failures to `errors`.
std::vector<std::filesystem::path>
remove_run_cgroups(const std::filesystem::path& run_dir, const std::optional<RunState>& state,
                   capacity::CpuController& controller, std::vector<std::string>& errors,
                   std::chrono::milliseconds grace = capacity::kRemoveGrace);

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
