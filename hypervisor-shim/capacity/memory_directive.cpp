#include "memory_directive.hpp"

namespace partlink::capacity {

namespace {

std::string mib_text(std::uint64_t mib) {
    return std::to_string(mib) + " MiB";
}

MemoryOutcome refuse(MemoryOutcome outcome, std::string reason) {
    outcome.verdict = Verdict::refused;
    outcome.reason = std::move(reason);
    return outcome;
}

} // namespace

MemoryTarget memory_range(const PartitionPolicy& partition, std::uint64_t boot_mib) {
    if (partition.memory)
        return *partition.memory;
    return {boot_mib / 2, boot_mib};
}

MemoryOutcome evaluate_memory(const Policy& policy, const BootMemory& boot,
                              const MemoryDirective& directive) {
    MemoryOutcome outcome;
    outcome.directive = directive;
    // The port's WLM flag said so already; the policy must agree, as for CPU.
    if (directive.from != policy.privileged)
        return refuse(outcome, "partition " + printable(directive.from) +
                                   " is not WLM-privileged: only " + policy.privileged +
                                   " may issue capacity directives");
    const auto* partition = policy.find(directive.target);
    if (!partition)
        return refuse(outcome, "unknown partition '" + printable(directive.target) + "'");
    const auto booted = boot.find(directive.target);
    if (booted == boot.end())
        return refuse(outcome, "partlinkd has no balloon control for " + directive.target +
                                   " (no QMP socket in its capacity configuration)");
    if (directive.mib <= 0)
        return refuse(outcome,
                      "memory must be positive, not " + std::to_string(directive.mib) + " MiB");
    if (directive.mib > kAbsurdMib)
        return refuse(outcome, std::to_string(directive.mib) + " MiB is absurd (more than " +
                                   std::to_string(kAbsurdMib) + " MiB)");

    const MemoryTarget range = memory_range(*partition, booted->second);
    const auto asked = static_cast<std::uint64_t>(directive.mib);
    outcome.verdict = Verdict::applied;
    outcome.target_mib = asked;
    if (asked < range.min_mib) {
        outcome.verdict = Verdict::clamped;
        outcome.target_mib = range.min_mib;
        outcome.reason = mib_text(asked) + " is below " + directive.target + "'s minimum " +
                         mib_text(range.min_mib);
    } else if (asked > range.max_mib) {
        outcome.verdict = Verdict::clamped;
        outcome.target_mib = range.max_mib;
        outcome.reason = mib_text(asked) + " is above " + directive.target + "'s maximum " +
                         mib_text(range.max_mib) +
                         (range.max_mib == booted->second ? " (the RAM it booted with)" : "");
    }
    return outcome;
}

} // namespace partlink::capacity
