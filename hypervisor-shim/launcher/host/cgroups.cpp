#include "host/cgroups.hpp"

#include <chrono>
#include <map>
#include <set>
#include <system_error>
#include <thread>

#include "capacity/directive.hpp"
#include "capacity/enforcer.hpp"
#include "capacity/policy.hpp"
#include "host/net_setup.hpp"

namespace partlink {

namespace fs = std::filesystem;
namespace cap = partlink::capacity;

namespace {

constexpr const char* kNoCgroupsHint =
    "; or run `partlink up --no-cgroups` to boot without CPU capacity control";

bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

} // namespace

CpuControllerPtr open_cpu_cgroups() {
    try {
        auto controller = cap::make_cpu_controller(cap::detect_cpu_hierarchy());
        controller->check_access();
        return controller;
    } catch (const std::exception& e) {
        throw Error(std::string("cannot place the partitions in CPU cgroups: ") + e.what() +
                    kNoCgroupsHint);
    }
}

CpuControllerPtr find_cpu_cgroups() {
    try {
        return cap::make_cpu_controller(cap::detect_cpu_hierarchy());
    } catch (const std::exception&) {
        return nullptr;
    }
}

fs::path cgroup_run_group(const cap::CpuController& controller, const fs::path& run_dir) {
    return controller.root() / cap::kPartlinkGroup / run_dir_hash(run_dir.string());
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

namespace {

// A group of the same name left by a killed launcher: emptied and removed.
fs::path fresh_group(const PartitionRecord& p, cap::CpuController& controller) {
    const fs::path& group = p.cgroup->path;
    if (is_dir(group))
        controller.remove_group(group);
    return controller.create_group(group.lexically_relative(controller.root()));
}

} // namespace

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
        groups[p.name] = fresh_group(p, controller);
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
    const fs::path group = fresh_group(p, controller);
    controller.set_cap(group, cap::cap_for(cap::CpuAmount{p.cgroup->entitlement_units}));
    controller.set_weight(group, p.cgroup->weight);
}

void move_into_cgroup(const PartitionRecord& p, pid_t pid, cap::CpuController& controller) {
    if (p.cgroup)
        controller.move_pid(p.cgroup->path, pid);
}

std::vector<std::string> remove_partition_cgroup(const fs::path& group,
                                                 cap::CpuController& controller,
                                                 std::chrono::milliseconds grace) {
    // A QEMU just killed may still be exiting (unmapping its RAM), listed
    // in the group but past moving: give it a few seconds to be gone.
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (;;) {
        if (!is_dir(group))
            return {};
        try {
            controller.remove_group(group);
            return {};
        } catch (const std::exception& e) {
            if (std::chrono::steady_clock::now() >= deadline)
                return {e.what()};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
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
    for (const auto& run : run_groups) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(run, ec))
            if (entry.is_directory(ec))
                groups.insert(entry.path());
    }
    std::vector<fs::path> removed;
    for (const auto& group : groups) {
        if (!is_dir(group))
            continue;
        auto failed = remove_partition_cgroup(group, controller, grace);
        if (failed.empty())
            removed.push_back(group);
        errors.insert(errors.end(), failed.begin(), failed.end());
    }
    for (const auto& run : run_groups) {
        if (!is_dir(run))
            continue;
        auto failed = remove_partition_cgroup(run, controller, grace);
        if (failed.empty())
            removed.push_back(run);
        errors.insert(errors.end(), failed.begin(), failed.end());
    }
    return removed;
}

CapacityStatus capacity_status(const CgroupRecord& record, const cap::CpuController* controller) {
    CapacityStatus s;
    s.group = record.path;
    s.entitlement_cpus = cap::CpuAmount{record.entitlement_units}.cpus();
    if (record.min_units > 0 && record.max_units > 0) {
        s.min_cpus = cap::CpuAmount{record.min_units}.cpus();
        s.max_cpus = cap::CpuAmount{record.max_units}.cpus();
    }
    s.weight = record.weight;
    s.exists = is_dir(record.path);
    if (!s.exists)
        return s;
    if (!controller) {
        s.error = "no CPU cgroup hierarchy found";
        return s;
    }
    try {
        s.cap = controller->cap(record.path);
        s.weight = controller->weight(record.path);
        s.stat = controller->stat(record.path);
    } catch (const std::exception& e) {
        s.error = e.what();
    }
    return s;
}

} // namespace partlink
