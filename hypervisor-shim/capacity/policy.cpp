#include "policy.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sched.h>
#include <set>
#include <sstream>
#include <unistd.h>

namespace fs = std::filesystem;
using nlohmann::json;

namespace partlink::capacity {

namespace {

// Above this a value is a typo (or a unit mix-up), and converting it to
// units would overflow.
constexpr double kLargestCpus = 1e6;

std::string cpus_text(double cpus) {
    char text[32];
    std::snprintf(text, sizeof text, "%g CPU", cpus);
    return text;
}

std::string cpus_text(CpuAmount amount) {
    return cpus_text(amount.cpus());
}

bool plain_name(std::string_view name) {
    return !name.empty() && name != "." && name != ".." && name.size() <= 64 &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                      c == '.';
           });
}

CpuAmount host_amount(double host_cpus) {
    return CpuAmount{static_cast<std::int64_t>(std::floor(host_cpus * CpuAmount::kUnitsPerCpu))};
}

std::string type_name(const json& value) {
    return value.type_name();
}

// Reads the partition fields, reporting shape problems (unknown keys, wrong
// types, missing fields); the values themselves are checked by
// validate_policy.
class PartitionReader {
public:
    PartitionReader(const json& object, std::string where, double host_cpus,
                    std::vector<std::string>& problems)
        : object_(object)
        , where_(std::move(where))
        , host_cpus_(host_cpus)
        , problems_(problems) {}

    std::optional<PartitionPolicy> read() {
        static const std::set<std::string> known = {"name", "entitlement", "min",
                                                    "max",  "weight",      "memory_mib"};
        for (const auto& [key, value] : object_.items())
            if (!known.contains(key))
                problem("unknown key '" + key +
                        "' (known: name, entitlement, min, max, weight, memory_mib)");
        PartitionPolicy partition;
        bool ok = problems_.size() == start_;
        if (const auto it = object_.find("name"); it == object_.end() || !it->is_string()) {
            problem("'name' is required and must be a string");
            ok = false;
        } else {
            partition.name = it->get<std::string>();
        }
        const auto entitlement = cpus("entitlement", std::nullopt);
        const auto min = cpus("min", kDefaultMinCpus);
        const auto max = cpus("max", host_cpus_);
        if (!entitlement || !min || !max)
            ok = false;
        else {
            partition.entitlement = *entitlement;
            partition.min = *min;
            partition.max = *max;
        }
        if (const auto it = object_.find("weight"); it != object_.end()) {
            if (!it->is_number_integer() || it->get<std::int64_t>() < 1 ||
                it->get<std::int64_t>() > 10000) {
                problem("'weight' must be an integer in 1..10000 (a cgroup v2 cpu.weight), not " +
                        it->dump());
                ok = false;
            } else {
                partition.weight = it->get<std::uint32_t>();
            }
        }
        if (const auto it = object_.find("memory_mib"); it != object_.end()) {
            partition.memory = memory(*it);
            if (!partition.memory)
                ok = false;
        }
        if (!ok)
            return std::nullopt;
        return partition;
    }

private:
    void problem(const std::string& text) { problems_.push_back(where_ + ": " + text); }

    std::optional<CpuAmount> cpus(const char* key, std::optional<double> fallback) {
        const auto it = object_.find(key);
        if (it == object_.end()) {
            if (!fallback)
                problem(std::string("'") + key + "' is required (in CPUs, e.g. 0.5)");
            return fallback ? std::optional(CpuAmount::from_cpus(*fallback)) : std::nullopt;
        }
        if (!it->is_number()) {
            problem(std::string("'") + key + "' must be a number of CPUs, not a " + type_name(*it));
            return std::nullopt;
        }
        const double value = it->get<double>();
        if (!std::isfinite(value) || value <= 0 || value > kLargestCpus) {
            problem(std::string("'") + key + "' must be a positive number of CPUs, not " +
                    it->dump());
            return std::nullopt;
        }
        return CpuAmount::from_cpus(value);
    }

    std::optional<MemoryTarget> memory(const json& value) {
        if (!value.is_object()) {
            problem("'memory_mib' must be an object {\"min\": MiB, \"max\": MiB}");
            return std::nullopt;
        }
        bool ok = true;
        for (const auto& [key, item] : value.items())
            if (key != "min" && key != "max") {
                problem("memory_mib: unknown key '" + key + "' (known: min, max)");
                ok = false;
            }
        MemoryTarget target;
        for (const char* key : {"min", "max"}) {
            const auto it = value.find(key);
            // Signed or unsigned: a document built in code holds signed integers.
            if (it == value.end() || !it->is_number_integer() || it->get<std::int64_t>() <= 0) {
                problem(std::string("memory_mib: '") + key +
                        "' is required and must be a positive integer (MiB)");
                ok = false;
                continue;
            }
            (std::string_view(key) == "min" ? target.min_mib : target.max_mib) =
                it->get<std::uint64_t>();
        }
        if (!ok)
            return std::nullopt;
        return target;
    }

    const json& object_;
    std::string where_;
    double host_cpus_;
    std::vector<std::string>& problems_;
    std::size_t start_ = problems_.size();
};

std::string join_problems(const std::string& source, const std::vector<std::string>& problems) {
    std::string message = "invalid capacity policy " + source + ":";
    for (const auto& problem : problems)
        message += "\n  - " + problem;
    return message;
}

} // namespace

PolicyError::PolicyError(const std::string& source, std::vector<std::string> problems)
    : Error(join_problems(source, problems), kExitUsage)
    , problems_(std::move(problems)) {}

const PartitionPolicy* Policy::find(std::string_view name) const {
    const auto it = std::find_if(partitions.begin(), partitions.end(),
                                 [&](const PartitionPolicy& p) { return p.name == name; });
    return it == partitions.end() ? nullptr : &*it;
}

CpuAmount Policy::total_entitlement() const {
    CpuAmount total;
    for (const auto& partition : partitions)
        total += partition.entitlement;
    return total;
}

std::vector<std::string> validate_policy(const Policy& policy) {
    std::vector<std::string> problems;
    if (!std::isfinite(policy.host_cpus) || policy.host_cpus <= 0)
        problems.push_back("the host CPU count " + std::to_string(policy.host_cpus) +
                           " is not a positive number");
    if (policy.partitions.empty())
        problems.push_back("no partitions: list at least one under \"partitions\"");
    const auto host = host_amount(policy.host_cpus);
    const auto smallest = CpuAmount::from_cpus(kSmallestCapCpus);
    std::set<std::string> names;
    for (const auto& p : policy.partitions) {
        const std::string where = "partition " + (p.name.empty() ? "\"\"" : p.name) + ": ";
        if (!plain_name(p.name))
            problems.push_back(where + "the name must be 1..64 letters, digits, '-', '_' or '.' "
                                       "(it names a cgroup directory)");
        if (!names.insert(p.name).second)
            problems.push_back(where + "listed more than once");
        if (p.min < smallest)
            problems.push_back(where + "min " + cpus_text(p.min) +
                               " is below the kernel's smallest cap, " +
                               cpus_text(kSmallestCapCpus) + " (1 ms per 100 ms)");
        if (p.min > p.max)
            problems.push_back(where + "min " + cpus_text(p.min) + " is above max " +
                               cpus_text(p.max));
        else if (p.entitlement < p.min || p.entitlement > p.max)
            problems.push_back(where + "entitlement " + cpus_text(p.entitlement) +
                               " is outside [min " + cpus_text(p.min) + ", max " +
                               cpus_text(p.max) + "]");
        if (p.max > host)
            problems.push_back(where + "max " + cpus_text(p.max) + " is more than the host's " +
                               cpus_text(policy.host_cpus));
        if (p.weight < 1 || p.weight > 10000)
            problems.push_back(where + "weight " + std::to_string(p.weight) +
                               " is outside 1..10000");
        if (p.memory && (p.memory->min_mib == 0 || p.memory->min_mib > p.memory->max_mib))
            problems.push_back(where + "memory_mib min " + std::to_string(p.memory->min_mib) +
                               " must be positive and at most max " +
                               std::to_string(p.memory->max_mib));
    }
    if (policy.total_entitlement() > host)
        problems.push_back("the entitlements add up to " + cpus_text(policy.total_entitlement()) +
                           ", more than the host's " + cpus_text(policy.host_cpus));
    if (policy.privileged.empty())
        problems.push_back("\"privileged\" must name the one partition allowed to issue "
                           "capacity directives");
    else if (!policy.find(policy.privileged))
        problems.push_back("the privileged partition '" + policy.privileged +
                           "' is not one of the partitions");
    return problems;
}

Policy parse_policy(const json& document, double host_cpus, const std::string& source) {
    std::vector<std::string> problems;
    Policy policy;
    policy.host_cpus = host_cpus;
    if (!document.is_object())
        throw PolicyError(source,
                          {"the policy must be a JSON object, not a " + type_name(document)});
    for (const auto& [key, value] : document.items())
        if (key != "privileged" && key != "partitions")
            problems.push_back("unknown key '" + key + "' (known: privileged, partitions)");
    if (const auto it = document.find("privileged"); it != document.end()) {
        if (it->is_string())
            policy.privileged = it->get<std::string>();
        else
            problems.push_back("\"privileged\" must be a partition name, not a " + type_name(*it));
    }
    const auto partitions = document.find("partitions");
    if (partitions == document.end() || !partitions->is_array()) {
        problems.push_back("\"partitions\" is required: a list of {\"name\", \"entitlement\", "
                           "...} objects");
    } else {
        for (std::size_t i = 0; i < partitions->size(); ++i) {
            const auto& item = (*partitions)[i];
            std::string where = "partitions[" + std::to_string(i) + "]";
            if (item.is_object() && item.contains("name") && item["name"].is_string())
                where += " (" + item["name"].get<std::string>() + ")";
            if (!item.is_object()) {
                problems.push_back(where + ": must be an object, not a " + type_name(item));
                continue;
            }
            if (auto partition = PartitionReader(item, where, host_cpus, problems).read())
                policy.partitions.push_back(std::move(*partition));
        }
    }
    // Value checks only make sense on a policy whose shape is right.
    if (problems.empty())
        problems = validate_policy(policy);
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));
    return policy;
}

Policy parse_policy_text(std::string_view text, double host_cpus, const std::string& source) {
    json document;
    try {
        document = json::parse(text);
    } catch (const json::parse_error& e) {
        throw PolicyError(source, {std::string("not valid JSON: ") + e.what()});
    }
    return parse_policy(document, host_cpus, source);
}

Policy load_policy(const fs::path& file, double host_cpus) {
    std::ifstream in(file);
    if (!in)
        throw Error("cannot read the capacity policy " + file.string() +
                    ": check the path (or run without one for the default policy)");
    std::ostringstream text;
    text << in.rdbuf();
    return parse_policy_text(text.str(), host_cpus, file.string());
}

Policy default_policy(std::size_t partitions, double host_cpus) {
    if (partitions == 0)
        throw PolicyError("default", {"no partitions to share the host between"});
    const auto host = host_amount(host_cpus);
    const CpuAmount share{host.units / static_cast<std::int64_t>(partitions)};
    const auto min = CpuAmount::from_cpus(kDefaultMinCpus);
    if (share < min)
        throw PolicyError("default",
                          {std::to_string(partitions) + " partitions on " + cpus_text(host_cpus) +
                           " leave each less than the " + cpus_text(kDefaultMinCpus) +
                           " minimum: write a policy file"});
    Policy policy;
    policy.host_cpus = host_cpus;
    policy.privileged = "vm1";
    for (std::size_t i = 1; i <= partitions; ++i)
        policy.partitions.push_back({"vm" + std::to_string(i), share, min, host, 100, {}});
    return policy;
}

json to_json(const Policy& policy) {
    json partitions = json::array();
    for (const auto& p : policy.partitions) {
        json item = {{"name", p.name},
                     {"entitlement", p.entitlement.cpus()},
                     {"min", p.min.cpus()},
                     {"max", p.max.cpus()},
                     {"weight", p.weight}};
        if (p.memory)
            item["memory_mib"] = {{"min", p.memory->min_mib}, {"max", p.memory->max_mib}};
        partitions.push_back(std::move(item));
    }
    return {{"privileged", policy.privileged}, {"partitions", std::move(partitions)}};
}

double host_cpu_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (::sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? double(online) : 1.0;
}

} // namespace partlink::capacity
