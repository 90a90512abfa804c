#include "run_config.hpp"

#include <fstream>
#include <set>
#include <sstream>

using nlohmann::json;

namespace partlink::capacity {

json to_json(const RunCapacityConfig& config) {
    json cgroups = json::object();
    for (const auto& [name, path] : config.cgroups)
        cgroups[name] = path.string();
    json document = {{"host_cpus", config.policy.host_cpus},
                     {"policy", to_json(config.policy)},
                     {"cgroups", std::move(cgroups)},
                     {"audit_log", config.audit_log.string()},
                     {"chart_log", config.chart_log.string()}};
    if (!config.balloons.empty()) {
        json balloons = json::object();
        for (const auto& [name, balloon] : config.balloons)
            balloons[name] = {{"qmp", balloon.qmp.string()}, {"boot_mib", balloon.boot_mib}};
        document["balloons"] = std::move(balloons);
    }
    return document;
}

BootMemory RunCapacityConfig::boot_memory() const {
    BootMemory boot;
    for (const auto& [name, balloon] : balloons)
        boot.emplace(name, balloon.boot_mib);
    return boot;
}

namespace {

bool absolute_path(const json& value) {
    return value.is_string() && !value.get<std::string>().empty() &&
           value.get<std::string>().front() == '/';
}

// "balloons": each a partition of the policy, with an absolute QMP socket
// and the RAM it boots with, which no memory range may exceed.
void parse_balloons(const json& balloons, RunCapacityConfig& config,
                    std::vector<std::string>& problems) {
    if (!balloons.is_object()) {
        problems.push_back("'balloons' must map partitions to {\"qmp\": PATH, \"boot_mib\": MiB}");
        return;
    }
    for (const auto& [name, item] : balloons.items()) {
        const std::string where = "balloons." + name;
        const auto* partition = config.policy.find(name);
        if (!partition) {
            problems.push_back(where + ": no such partition in the policy");
            continue;
        }
        if (!item.is_object() || !item.contains("qmp") || !item.contains("boot_mib") ||
            item.size() != 2) {
            problems.push_back(where + " must be {\"qmp\": PATH, \"boot_mib\": MiB}");
            continue;
        }
        if (!absolute_path(item["qmp"]))
            problems.push_back(where + ".qmp must be an absolute path");
        if (!item["boot_mib"].is_number_integer() || item["boot_mib"].get<std::int64_t>() <= 0)
            problems.push_back(where + ".boot_mib must be a positive whole number of MiB");
        else if (partition->memory &&
                 partition->memory->max_mib > item["boot_mib"].get<std::uint64_t>())
            problems.push_back(name + "'s memory_mib max " +
                               std::to_string(partition->memory->max_mib) +
                               " is more than the RAM it boots with, " +
                               std::to_string(item["boot_mib"].get<std::uint64_t>()) +
                               " MiB: a balloon only takes memory away");
        else if (absolute_path(item["qmp"]))
            config.balloons[name] = {item["qmp"].get<std::string>(),
                                     item["boot_mib"].get<std::uint64_t>()};
    }
}

} // namespace

RunCapacityConfig parse_run_config(const json& document, const std::string& source) {
    if (!document.is_object())
        throw PolicyError(source, {"must be a JSON object"});
    std::vector<std::string> problems;
    static const std::set<std::string> required = {"host_cpus", "policy", "cgroups", "audit_log",
                                                   "chart_log"};
    for (const auto& [key, value] : document.items())
        if (!required.contains(key) && key != "balloons")
            problems.push_back("unknown key '" + key +
                               "' (known: host_cpus, policy, cgroups, audit_log, chart_log, "
                               "balloons)");
    for (const auto& key : required)
        if (!document.contains(key))
            problems.push_back("'" + key + "' is required");
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));

    const auto& host = document["host_cpus"];
    if (!host.is_number() || host.get<double>() <= 0)
        problems.push_back("'host_cpus' must be a positive number");
    for (const char* key : {"audit_log", "chart_log"})
        if (!absolute_path(document[key]))
            problems.push_back(std::string("'") + key + "' must be an absolute path");
    if (!document["cgroups"].is_object())
        problems.push_back("'cgroups' must map each partition to its cgroup directory");
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));

    RunCapacityConfig config;
    config.policy = parse_policy(document["policy"], host.get<double>(), source + ": policy");
    for (const auto& [name, path] : document["cgroups"].items()) {
        if (!absolute_path(path))
            problems.push_back("cgroups." + name + " must be an absolute path");
        else if (!config.policy.find(name))
            problems.push_back("cgroups." + name + ": no such partition in the policy");
        else
            config.cgroups.emplace(name, path.get<std::string>());
    }
    for (const auto& p : config.policy.partitions)
        if (!document["cgroups"].contains(p.name))
            problems.push_back("partition " + p.name + " has no cgroup");
    if (document.contains("balloons"))
        parse_balloons(document["balloons"], config, problems);
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));
    config.audit_log = document["audit_log"].get<std::string>();
    config.chart_log = document["chart_log"].get<std::string>();
    return config;
}

RunCapacityConfig load_run_config(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in)
        throw Error("cannot read the capacity configuration " + file.string() +
                    ": `partlink up` writes it into the run directory");
    std::ostringstream text;
    text << in.rdbuf();
    json document;
    try {
        document = json::parse(text.str());
    } catch (const json::parse_error& e) {
        throw PolicyError(file.string(), {std::string("not valid JSON: ") + e.what()});
    }
    return parse_run_config(document, file.string());
}

} // namespace partlink::capacity
