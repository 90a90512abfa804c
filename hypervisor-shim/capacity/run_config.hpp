// The capacity setup of one run, as the launcher hands it to partlinkd
// (`partlinkd --capacity RUN/capacity.json`): the operator's policy, the
// host CPUs it was checked against, each partition's cgroup, and where the
// audit and chart logs go.
//
//   {"host_cpus": 2,
//    "policy": {"privileged": "vm1", "partitions": [...]},   (policy.hpp)
//    "cgroups": {"vm1": "/sys/fs/cgroup/cpu/partlink/3f2a/vm1", ...},
//    "audit_log": "/run/partlink/wlm-audit.jsonl",
//    "chart_log": "/run/partlink/wlm-chart.jsonl",
//    "balloons": {"vm1": {"qmp": "/run/partlink/vm1.hv.qmp", "boot_mib": 512}, ...}}
//
// Every partition of the policy has a cgroup and no other partition does.
// "balloons" is optional: a partition without one gets no memory directives.
// Its QMP socket is a monitor of the partition's QEMU for partlinkd alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "memory_directive.hpp"
#include "policy.hpp"

namespace partlink::capacity {

struct BalloonConfig {
    std::filesystem::path qmp;
    std::uint64_t boot_mib = 0;
    bool operator==(const BalloonConfig&) const = default;
};

struct RunCapacityConfig {
    Policy policy;
    std::map<std::string, std::filesystem::path, std::less<>> cgroups;
    std::filesystem::path audit_log;
    std::filesystem::path chart_log;
    std::map<std::string, BalloonConfig, std::less<>> balloons;

    BootMemory boot_memory() const;
};

nlohmann::json to_json(const RunCapacityConfig& config);
// Throws PolicyError listing every problem, naming `source`.
RunCapacityConfig parse_run_config(const nlohmann::json& json, const std::string& source);
RunCapacityConfig load_run_config(const std::filesystem::path& file);

} // namespace partlink::capacity
