// The operator's capacity policy: what each partition is entitled to, the
// bounds a directive may move it within, and which one partition may issue
// directives.
//
// File format (JSON; min, max, weight and memory_mib are optional):
//   {
//     "privileged": "vm1",
//     "partitions": [
//       {"name": "vm1", "entitlement": 0.5, "min": 0.1, "max": 2, "weight": 100,
//        "memory_mib": {"min": 256, "max": 1024}},
//       ...
//     ]
//   }
// CPU values are in CPUs (0.5 = half of one CPU), resolved to 1e-5 CPU;
// weight is a cgroup v2 cpu.weight (1..10000, default 100).  Defaults: min
// 0.1, max every host CPU.  memory_mib is the range memory directives may
// move the guest's balloon target within (memory_directive.hpp; default
// half the guest's boot RAM to all of it).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu_amount.hpp"
#include "error.hpp"

namespace partlink::capacity {

inline constexpr double kDefaultMinCpus = 0.1;
// The kernel's smallest quota is 1 ms per 100 ms period.
inline constexpr double kSmallestCapCpus = 0.01;

struct MemoryTarget {
    std::uint64_t min_mib = 0;
    std::uint64_t max_mib = 0;
    bool operator==(const MemoryTarget&) const = default;
};

struct PartitionPolicy {
    std::string name;
    CpuAmount entitlement;
    CpuAmount min;
    CpuAmount max;
    std::uint32_t weight = 100;
    std::optional<MemoryTarget> memory;
};

struct Policy {
    double host_cpus = 0; // what totals and maxima were checked against
    std::string privileged;
    std::vector<PartitionPolicy> partitions;

    const PartitionPolicy* find(std::string_view name) const;
    CpuAmount total_entitlement() const;
};

// Carries every problem found, one per line, so that an operator fixes the
// file in one go.
class PolicyError : public Error {
public:
    PolicyError(const std::string& source, std::vector<std::string> problems);
    const std::vector<std::string>& problems() const { return problems_; }

private:
    std::vector<std::string> problems_;
};

// `source` names the file in messages.
Policy parse_policy(const nlohmann::json& json, double host_cpus,
                    const std::string& source = "policy");
Policy parse_policy_text(std::string_view text, double host_cpus,
                         const std::string& source = "policy");
Policy load_policy(const std::filesystem::path& file, double host_cpus);

// Problems with a Policy built in code; parse_policy runs these too.
std::vector<std::string> validate_policy(const Policy& policy);

// No policy file: vm1..vmN, vm1 privileged, an equal share of the host's
// CPUs each, min 0.1, max all of them.
Policy default_policy(std::size_t partitions, double host_cpus);

nlohmann::json to_json(const Policy& policy);

// The CPUs this process may run on (its affinity mask), which is what the
// partitions' QEMUs will share.
double host_cpu_count();

} // namespace partlink::capacity
