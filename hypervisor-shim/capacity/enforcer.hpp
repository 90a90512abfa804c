// Applies directive outcomes to the partitions' cgroups and checks that they
// took effect.
//
// partlinkd's loop, per directive:
//   auto outcome = pool.evaluate(directive);   // authorize, clamp, shift
//   auto record = enforcer.enforce(outcome);   // apply, verify
//   if (record.result != AuditResult::failed) pool.commit(outcome);
//   audit_log.append(record);                  // then answer the guest
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "audit_log.hpp"
#include "cgroup.hpp"
#include "directive.hpp"

namespace partlink::capacity {

struct EnforcerOptions {
    // How long to watch cpu.stat after applying: a few 100 ms periods, so
    // that a capped busy partition shows throttling, and short enough that
    // the guest's answer is not late.
    std::chrono::milliseconds window{300};
    // Tests replace the wait.
    std::function<void(std::chrono::milliseconds)> sleep;
};

class Enforcer {
public:
    // `groups` maps each partition to its cgroup directory.
    Enforcer(std::shared_ptr<CpuController> controller,
             std::map<std::string, std::filesystem::path, std::less<>> groups,
             EnforcerOptions options = {});

    // Gives every partition its current cap and its weight (at start, and
    // after a restart).  Throws on the first failure: partlinkd must not run
    // with capacity it cannot enforce.
    void apply_pool(const CapacityPool& pool);

    // Applies a non-refused outcome's changes, lowering caps before raising
    // any so that the sum of caps never exceeds the pool, even for a moment.
    // If a write fails, the changes already made are undone and the record
    // says `failed`.  Then each touched cap is read back and cpu.stat is
    // sampled over the window.  Never throws for a cgroup problem: the
    // answer goes to a guest and into the audit log.
    AuditRecord enforce(const DirectiveOutcome& outcome);

private:
    const std::filesystem::path& group_of(const std::string& partition) const;
    Verification verify(const std::vector<CapChange>& touched);

    std::shared_ptr<CpuController> controller_;
    std::map<std::string, std::filesystem::path, std::less<>> groups_;
    EnforcerOptions options_;
};

// The cgroup cap for a pool amount: units are quota microseconds per the
// default 100 ms period.
CpuCap cap_for(CpuAmount amount);

} // namespace partlink::capacity
