// Capacity directives: "give partition X this many CPUs", from the WLM
// manager through the device mailbox.  Pure logic: deciding what a directive
// does to the pool, not doing it (that is the Enforcer's job).
//
// A directive sets the target's cap.  It is
//   1. authorized: only the policy's privileged partition may send one;
//   2. validated: the target exists, cpu is finite, positive and not absurd;
//   3. clamped to the target's [min, max];
//   4. turned into a SHIFT that keeps the sum of all caps constant.
//
// Donor rule.  A directive may name a donor: the increase is taken from it
// alone (down to its minimum), a decrease is given to it alone (up to its
// maximum).  Without one, an increase of D for the target is taken from
// every other partition in proportion to its surplus above its minimum
// (cap - min), so nobody is pushed below its minimum and those with the
// most to spare give the most; a decrease gives the freed capacity to the
// others in proportion to their room below their maximum (max - cap).  If the others cannot give
// (or take) all of D, the shift is cut to what they can and the directive
// is reported as clamped.  Amounts are whole units of 1e-5 CPU split by
// largest remainder, so the total is exact, not approximately constant.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cpu_amount.hpp"
#include "policy.hpp"

namespace partlink::capacity {

// More than this is not a capacity request but garbage or a unit mix-up.
inline constexpr double kAbsurdCpus = 1024;

struct Directive {
    // The partition the directive came from, as partlinkd knows it from the
    // device (port) the mailbox message arrived on: never from the message
    // body, which the guest controls.
    std::string from;
    std::string target;
    double cpu = 0; // the cap asked for the target, in CPUs
    // The one partition the difference comes from (or goes to); none: all
    // the others share it.
    std::optional<std::string> donor;
};

enum class Verdict { applied, clamped, refused };
std::string_view to_string(Verdict verdict);

struct CapChange {
    std::string partition;
    CpuAmount before;
    CpuAmount after;
    bool operator==(const CapChange&) const = default;
};

struct DirectiveOutcome {
    Directive directive;
    Verdict verdict = Verdict::refused;
    std::string reason;
    // The target first (listed even when its cap does not change, so that a
    // log shows where it stood), then each partition whose cap changes.
    std::vector<CapChange> changes;
    CpuAmount granted; // the target's cap afterwards
};

using Caps = std::map<std::string, CpuAmount, std::less<>>;

// Splits `amount` over `weights` in proportion, in whole units: no part
// exceeds its weight and the parts add up to exactly `amount`, which must
// not exceed the sum of the weights.  Ties go to the earlier index.
std::vector<std::int64_t> split_proportionally(std::int64_t amount,
                                               const std::vector<std::int64_t>& weights);

// Printable form of untrusted text (a partition name from a mailbox) for
// messages: control and non-ASCII bytes as \xHH, at most 64 bytes.
std::string printable(std::string_view text);

class CapacityPool {
public:
    // Every partition starts at its entitlement.
    explicit CapacityPool(Policy policy);

    const Policy& policy() const { return policy_; }
    const Caps& caps() const { return caps_; }
    CpuAmount cap(std::string_view partition) const;
    CpuAmount total() const; // the sum of caps, which no directive changes

    DirectiveOutcome evaluate(const Directive& directive) const;
    // Takes over caps held elsewhere (the cgroups, after a daemon restart).
    // Throws std::invalid_argument unless they name exactly the policy's
    // partitions, each within its bounds, with the entitlements' total.
    void restore(const Caps& caps);

    // Makes an evaluated outcome the pool's state (after the Enforcer applied
    // it).  Throws if the outcome was evaluated against other caps.
    void commit(const DirectiveOutcome& outcome);

private:
    Policy policy_;
    Caps caps_;
};

} // namespace partlink::capacity
