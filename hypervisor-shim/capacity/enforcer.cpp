#include "enforcer.hpp"

#include <algorithm>
#include <thread>

namespace fs = std::filesystem;

namespace partlink::capacity {

CpuCap cap_for(CpuAmount amount) {
    static_assert(CpuAmount::kUnitsPerCpu == kDefaultPeriodUs,
                  "a pool unit is one quota microsecond per default period");
    if (amount.units < static_cast<std::int64_t>(kMinQuotaUs))
        throw CgroupError("a cap of " + std::to_string(amount.cpus()) +
                          " CPU is below the kernel's minimum of 0.01 CPU");
    return CpuCap{static_cast<std::uint64_t>(amount.units), kDefaultPeriodUs};
}

Enforcer::Enforcer(std::shared_ptr<CpuController> controller,
                   std::map<std::string, fs::path, std::less<>> groups, EnforcerOptions options)
    : controller_(std::move(controller))
    , groups_(std::move(groups))
    , options_(std::move(options)) {
    if (!options_.sleep)
        options_.sleep = [](std::chrono::milliseconds d) {
            std::this_thread::sleep_for(d);
        };
}

const fs::path& Enforcer::group_of(const std::string& partition) const {
    const auto it = groups_.find(partition);
    if (it == groups_.end())
        throw Error("partition " + partition + " has no cgroup: it was not started by partlinkd");
    return it->second;
}

void Enforcer::apply_pool(const CapacityPool& pool) {
    for (const auto& partition : pool.policy().partitions) {
        const auto& group = group_of(partition.name);
        controller_->set_cap(group, cap_for(pool.cap(partition.name)));
        controller_->set_weight(group, partition.weight);
    }
}

AuditRecord Enforcer::enforce(const DirectiveOutcome& outcome) {
    AuditRecord record;
    record.time = std::chrono::system_clock::now();
    record.from = outcome.directive.from;
    record.target = outcome.directive.target;
    record.cpu = outcome.directive.cpu;
    record.donor = outcome.directive.donor;
    record.result = audit_result(outcome.verdict);
    record.reason = outcome.reason;
    record.changes = outcome.changes;
    if (outcome.verdict == Verdict::refused)
        return record;

    std::vector<CapChange> writes;
    for (const auto& change : outcome.changes)
        if (change.before != change.after)
            writes.push_back(change);
    std::stable_partition(writes.begin(), writes.end(),
                          [](const CapChange& c) { return c.after < c.before; });

    std::vector<const CapChange*> done;
    try {
        for (const auto& change : writes) {
            controller_->set_cap(group_of(change.partition), cap_for(change.after));
            done.push_back(&change);
        }
    } catch (const std::exception& e) {
        std::string rollback = "earlier changes of this directive were undone";
        for (auto it = done.rbegin(); it != done.rend(); ++it) {
            try {
                controller_->set_cap(group_of((*it)->partition), cap_for((*it)->before));
            } catch (const std::exception& again) {
                rollback = "undoing them failed too (" + std::string(again.what()) +
                           "): the cgroups no longer match the pool, restart partlinkd";
                break;
            }
        }
        record.result = AuditResult::failed;
        // The cause first: the guest's answer has room for 95 bytes.
        record.reason = "could not apply: " + std::string(e.what()) +
                        (done.empty() ? "" : "; " + rollback) + " (planned: " + outcome.reason +
                        ")";
        return record;
    }

    // Verify what was written, and the target even when it did not move, so
    // that every accepted directive confirms the target's cap; target first.
    std::vector<CapChange> touched;
    if (!outcome.changes.empty())
        touched.push_back(outcome.changes.front());
    for (const auto& change : writes)
        if (touched.empty() || change.partition != touched.front().partition)
            touched.push_back(change);
    record.verification = verify(touched);
    if (!record.verification->ok) {
        std::string mismatches;
        for (const auto& check : record.verification->partitions)
            if (!check.matches)
                mismatches +=
                    (mismatches.empty() ? "" : ", ") + check.partition +
                    (check.error.empty() ? " reads back a different cap" : ": " + check.error);
        record.reason += "; verification failed: " + mismatches;
    }
    return record;
}

Verification Enforcer::verify(const std::vector<CapChange>& touched) {
    Verification verification;
    verification.ok = true;
    verification.window_ms = options_.window.count();
    std::vector<std::optional<CpuStat>> before;
    for (const auto& change : touched) {
        PartitionCheck check;
        check.partition = change.partition;
        try {
            const auto expected = cap_for(change.after);
            check.expected_cpus = expected.cpus();
            const auto& group = group_of(change.partition);
            const auto actual = controller_->cap(group);
            check.read_back_cpus = actual.cpus();
            check.matches = actual == expected;
            before.push_back(controller_->stat(group));
        } catch (const std::exception& e) {
            check.error = e.what();
            before.push_back(std::nullopt);
        }
        verification.ok = verification.ok && check.matches;
        verification.partitions.push_back(std::move(check));
    }
    options_.sleep(options_.window);
    for (std::size_t i = 0; i < touched.size(); ++i) {
        if (!before[i])
            continue;
        auto& check = verification.partitions[i];
        try {
            const auto after = controller_->stat(group_of(touched[i].partition));
            // Counters only grow; a smaller one means the group was recreated.
            const auto grew = [](std::uint64_t a, std::uint64_t b) {
                return b >= a ? b - a : 0;
            };
            check.periods = grew(before[i]->nr_periods, after.nr_periods);
            check.throttled_periods = grew(before[i]->nr_throttled, after.nr_throttled);
            check.throttled_usec =
                std::max<std::int64_t>(0, (after.throttled - before[i]->throttled).count());
            if (before[i]->usage && after.usage)
                check.usage_usec =
                    std::max<std::int64_t>(0, (*after.usage - *before[i]->usage).count());
            check.usage_approximate = after.usage_approximate;
        } catch (const std::exception& e) {
            check.error = "cpu.stat: " + std::string(e.what());
        }
    }
    return verification;
}

} // namespace partlink::capacity
