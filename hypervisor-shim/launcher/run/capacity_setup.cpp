#include "run/capacity_setup.hpp"

#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "run/options.hpp"

namespace partlink {

namespace fs = std::filesystem;
namespace cap = partlink::capacity;

std::vector<std::string> policy_run_problems(const cap::Policy& policy, int vms, int mem_mib) {
    std::vector<std::string> problems;
    const std::string run = vms == 1 ? "vm1" : "vm1..vm" + std::to_string(vms);
    std::set<std::string> named;
    for (const auto& p : policy.partitions) {
        named.insert(p.name);
        auto index = parse_vm_name(p.name);
        if (!index || *index > vms)
            problems.push_back("partition '" + p.name + "' is not one of this run's (" + run + ")");
        if (p.memory && p.memory->max_mib > static_cast<std::uint64_t>(mem_mib))
            problems.push_back(p.name + "'s memory_mib max " + std::to_string(p.memory->max_mib) +
                               " is more than the " + std::to_string(mem_mib) +
                               " MiB it boots with (--mem): a balloon only takes memory away");
    }
    for (int i = 1; i <= vms; ++i)
        if (!named.contains(vm_name(i)))
            problems.push_back(vm_name(i) + " has no entry (every partition of the run needs one)");
    return problems;
}

void check_policy_for_run(const cap::Policy& policy, int vms, int mem_mib,
                          const std::string& source) {
    auto problems = policy_run_problems(policy, vms, mem_mib);
    if (problems.empty())
        return;
    std::string message = "--policy " + source + " does not fit a run of " + std::to_string(vms) +
                          " partition" + (vms == 1 ? "" : "s") + ":";
    for (const auto& p : problems)
        message += "\n  - " + p;
    message += "\nname exactly the partitions vm1..vmN of `--vms N` in the policy, with memory "
               "ranges within --mem";
    throw UsageError(message);
}

cap::Policy default_run_policy(int vms, double host_cpus, const std::string& wlm) {
    cap::Policy policy = cap::default_policy(static_cast<std::size_t>(vms), host_cpus);
    if (policy.find(wlm))
        policy.privileged = wlm;
    return policy;
}

cap::RunCapacityConfig run_capacity_config(const RunState& state, const cap::Policy& policy,
                                           const RunDir& dir) {
    cap::RunCapacityConfig config;
    config.policy = policy;
    for (const auto& p : state.partitions) {
        if (!p.cgroup)
            throw Error("internal error: " + p.name + " has no planned cgroup");
        config.cgroups[p.name] = p.cgroup->path;
        config.balloons[p.name] = {dir.hv_qmp_socket(p.index),
                                   static_cast<std::uint64_t>(state.settings.mem_mib)};
    }
    config.audit_log = dir.wlm_audit_log();
    config.chart_log = dir.wlm_chart_log();
    return config;
}

fs::path write_run_capacity_config(const RunDir& dir, const cap::RunCapacityConfig& config) {
    const fs::path file = dir.capacity_config();
    write_file_atomic(file, cap::to_json(config).dump(2) + "\n");
    return file;
}

void set_aside_wlm_logs(const RunDir& dir) {
    for (const fs::path& log : {dir.wlm_audit_log(), dir.wlm_chart_log()}) {
        std::error_code ec;
        if (!fs::exists(log, ec))
            continue;
        fs::path previous = log;
        previous.replace_extension(".previous.jsonl");
        fs::rename(log, previous, ec);
        if (ec)
            throw Error("cannot move the log of the earlier run " + log.string() +
                        " aside: " + ec.message());
    }
}

} // namespace partlink
