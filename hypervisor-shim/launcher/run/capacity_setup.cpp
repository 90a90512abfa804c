#include "run/capacity_setup.hpp"

#include <map>
#include <set>
#include <stdexcept>
#include <system_error>

#include <nlohmann/json.hpp>

#include "capacity/cpu_amount.hpp"
#include "capacity/enforcer.hpp"
#include "error.hpp"
#include "host/net_setup.hpp"
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
    if (!policy.find(wlm))
        throw std::logic_error("the WLM partition " + wlm + " is not a partition of the run");
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

namespace {

constexpr const char* kNoCgroupsHint =
    "; or run `partlink up --no-cgroups` to boot without CPU capacity control";

} // namespace

CpuControllerPtr open_cpu_cgroups() {
    try {
        return cap::open_checked_cpu_controller();
    } catch (const std::exception& e) {
        throw Error(std::string("cannot place the partitions in CPU cgroups: ") + e.what() +
                    kNoCgroupsHint);
    }
}

CpuControllerPtr find_cpu_cgroups() {
    return cap::find_cpu_controller();
}

fs::path cgroup_run_group(const cap::CpuController& controller, const fs::path& run_dir) {
    return cap::run_group(controller, run_dir_hash(run_dir.string()));
}

void plan_cgroups(RunState& state, const cap::CpuController& controller,
                  const cap::Policy& policy) {
    for (const auto& p : state.partitions)
        if (!policy.find(p.name))
            throw Error("the capacity policy has no partition " + p.name);
    state.cgroup_run = cgroup_run_group(controller, state.run_dir);
    for (auto& p : state.partitions) {
        const cap::PartitionPolicy* pp = policy.find(p.name);
        p.cgroup = CgroupRecord{*state.cgroup_run / p.name, pp->entitlement.units, pp->weight,
                                pp->min.units, pp->max.units};
    }
}

void plan_cgroups(RunState& state, const cap::CpuController& controller, double host_cpus) {
    plan_cgroups(state, controller, cap::default_policy(state.partitions.size(), host_cpus));
}

void create_cgroups(RunState& state, cap::CpuController& controller) {
    if (state.partitions.empty())
        return;
    std::map<std::string, fs::path, std::less<>> groups;
    // The planned entitlements as a policy of their own (the plan already
    // passed the default policy's checks against the host).
    cap::Policy policy;
    policy.privileged = state.partitions.front().name;
    for (const auto& p : state.partitions) {
        if (!p.cgroup)
            continue;
        groups[p.name] = cap::fresh_group(controller, p.cgroup->path);
        const cap::CpuAmount entitlement{p.cgroup->entitlement_units};
        policy.partitions.push_back(
            {p.name, entitlement, entitlement, entitlement, p.cgroup->weight, std::nullopt});
    }
    policy.host_cpus = policy.total_entitlement().cpus();
    if (policy.partitions.empty())
        return;
    // The enforcer's own start-up step: every partition at its entitlement.
    std::shared_ptr<cap::CpuController> shared(std::shared_ptr<cap::CpuController>{},
                                               &controller); // not owned
    cap::Enforcer(shared, std::move(groups)).apply_pool(cap::CapacityPool(std::move(policy)));
}

void create_cgroup(const PartitionRecord& p, cap::CpuController& controller) {
    if (!p.cgroup)
        return;
    const fs::path group = cap::fresh_group(controller, p.cgroup->path);
    controller.set_cap(group, cap::cap_for(cap::CpuAmount{p.cgroup->entitlement_units}));
    controller.set_weight(group, p.cgroup->weight);
}

void move_into_cgroup(const PartitionRecord& p, pid_t pid, cap::CpuController& controller) {
    if (p.cgroup)
        controller.move_pid(p.cgroup->path, pid);
}

std::vector<fs::path> remove_run_cgroups(const fs::path& run_dir,
                                         const std::optional<RunState>& state,
                                         cap::CpuController& controller,
                                         std::vector<std::string>& errors,
                                         std::chrono::milliseconds grace) {
    std::set<fs::path> run_groups = {cgroup_run_group(controller, run_dir)};
    std::set<fs::path> groups;
    if (state) {
        if (state->cgroup_run)
            run_groups.insert(*state->cgroup_run);
        for (const auto& p : state->partitions)
            if (p.cgroup)
                groups.insert(p.cgroup->path);
    }
    return cap::remove_run_groups(run_groups, std::move(groups), controller, errors, grace);
}

CapacityStatus capacity_status(const CgroupRecord& record, const cap::CpuController* controller) {
    CapacityStatus s;
    s.group = record.path;
    s.entitlement_cpus = cap::CpuAmount{record.entitlement_units}.cpus();
    if (record.min_units > 0 && record.max_units > 0) {
        s.min_cpus = cap::CpuAmount{record.min_units}.cpus();
        s.max_cpus = cap::CpuAmount{record.max_units}.cpus();
    }
    cap::GroupState now = cap::read_group(record.path, controller);
    s.weight = now.weight.value_or(record.weight);
    s.exists = now.exists;
    s.cap = now.cap;
    s.stat = now.stat;
    s.error = now.error;
    return s;
}

} // namespace partlink
