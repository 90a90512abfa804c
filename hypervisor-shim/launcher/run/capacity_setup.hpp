// The capacity side of `partlink up`: which policy a run gets (the
// operator's --policy file or the default one), whether it fits the run's
// partitions, and the RUN/capacity.json that hands the policy, the cgroups
// and the log files to partlinkd (`partlinkd --capacity FILE`).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "capacity/policy.hpp"
#include "capacity/run_config.hpp"
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
// each, min 0.1, max every host CPU), with the WLM partition `wlm` (vm1
// unless a --fabric-config names another).  Throws capacity::PolicyError if
// the host is too small for it.
capacity::Policy default_run_policy(int vms, double host_cpus, const std::string& wlm = "vm1");

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

} // namespace partlink
