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
    return {{"host_cpus", config.policy.host_cpus},
            {"policy", to_json(config.policy)},
            {"cgroups", std::move(cgroups)},
            {"audit_log", config.audit_log.string()},
            {"chart_log", config.chart_log.string()}};
}

RunCapacityConfig parse_run_config(const json& document, const std::string& source) {
    if (!document.is_object())
        throw PolicyError(source, {"must be a JSON object"});
    std::vector<std::string> problems;
    static const std::set<std::string> known = {"host_cpus", "policy", "cgroups", "audit_log",
                                                "chart_log"};
    for (const auto& [key, value] : document.items())
        if (!known.contains(key))
            problems.push_back("unknown key '" + key +
                               "' (known: host_cpus, policy, cgroups, audit_log, chart_log)");
    for (const auto& key : known)
        if (!document.contains(key))
            problems.push_back("'" + key + "' is required");
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));

    const auto& host = document["host_cpus"];
    if (!host.is_number() || host.get<double>() <= 0)
        problems.push_back("'host_cpus' must be a positive number");
    for (const char* key : {"audit_log", "chart_log"})
        if (!document[key].is_string() || document[key].get<std::string>().empty() ||
            document[key].get<std::string>().front() != '/')
            problems.push_back(std::string("'") + key + "' must be an absolute path");
    if (!document["cgroups"].is_object())
        problems.push_back("'cgroups' must map each partition to its cgroup directory");
    if (!problems.empty())
        throw PolicyError(source, std::move(problems));

    RunCapacityConfig config;
    config.policy = parse_policy(document["policy"], host.get<double>(), source + ": policy");
    for (const auto& [name, path] : document["cgroups"].items()) {
        if (!path.is_string() || path.get<std::string>().empty() ||
            path.get<std::string>().front() != '/')
            problems.push_back("cgroups." + name + " must be an absolute path");
        else if (!config.policy.find(name))
            problems.push_back("cgroups." + name + ": no such partition in the policy");
        else
            config.cgroups.emplace(name, path.get<std::string>());
    }
    for (const auto& p : config.policy.partitions)
        if (!document["cgroups"].contains(p.name))
            problems.push_back("partition " + p.name + " has no cgroup");
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
