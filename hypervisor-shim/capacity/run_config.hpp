// The capacity setup of one run, as the launcher hands it to partlinkd
// (`partlinkd --capacity RUN/capacity.json`): the operator's policy, the
// host CPUs it was checked against, each partition's cgroup, and where the
// audit and chart logs go.
//
//   {"host_cpus": 2,
//    "policy": {"privileged": "vm1", "partitions": [...]},   (policy.hpp)
//    "cgroups": {"vm1": "/sys/fs/cgroup/cpu/partlink/3f2a/vm1", ...},
//    "audit_log": "/run/partlink/wlm-audit.jsonl",
//    "chart_log": "/run/partlink/wlm-chart.jsonl"}
//
// Every partition of the policy has a cgroup and no other partition does.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "policy.hpp"

namespace partlink::capacity {

struct RunCapacityConfig {
    Policy policy;
    std::map<std::string, std::filesystem::path, std::less<>> cgroups;
    std::filesystem::path audit_log;
    std::filesystem::path chart_log;
};

nlohmann::json to_json(const RunCapacityConfig& config);
// Throws PolicyError listing every problem, naming `source`.
RunCapacityConfig parse_run_config(const nlohmann::json& json, const std::string& source);
RunCapacityConfig load_run_config(const std::filesystem::path& file);

} // namespace partlink::capacity
