#include "directive.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

namespace partlink::capacity {

namespace {

// 128 bits: amount x weight overflows 64 for large (if unlikely) pools.
__extension__ typedef __int128 Wide;

std::string cpus_text(CpuAmount amount) {
    char text[32];
    std::snprintf(text, sizeof text, "%g CPU", amount.cpus());
    return text;
}

std::string number_text(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", value);
    return text;
}

DirectiveOutcome refuse(const Directive& directive, std::string reason, const CapacityPool& pool) {
    DirectiveOutcome outcome{directive, Verdict::refused, std::move(reason), {}, {}};
    if (const auto* target = pool.policy().find(directive.target)) {
        const auto cap = pool.cap(target->name);
        outcome.changes.push_back({target->name, cap, cap});
        outcome.granted = cap;
    }
    return outcome;
}

std::string known_partitions(const Policy& policy) {
    std::string names;
    for (const auto& p : policy.partitions)
        names += (names.empty() ? "" : ", ") + p.name;
    return names;
}

} // namespace

std::string_view to_string(Verdict verdict) {
    switch (verdict) {
    case Verdict::applied:
        return "applied";
    case Verdict::clamped:
        return "clamped";
    case Verdict::refused:
        break;
    }
    return "refused";
}

std::vector<std::int64_t> split_proportionally(std::int64_t amount,
                                               const std::vector<std::int64_t>& weights) {
    const Wide total = std::accumulate(weights.begin(), weights.end(), Wide{0});
    if (amount < 0 || amount > total ||
        std::any_of(weights.begin(), weights.end(), [](std::int64_t w) { return w < 0; }))
        throw std::invalid_argument("split_proportionally: amount outside [0, sum of weights]");
    std::vector<std::int64_t> parts(weights.size(), 0);
    if (amount == 0)
        return parts;
    // Largest remainder: everyone gets the floor of their exact share, and
    // the units left over go to the largest fractional parts.
    std::vector<Wide> remainders(weights.size());
    std::int64_t given = 0;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const Wide exact = Wide{amount} * weights[i];
        parts[i] = static_cast<std::int64_t>(exact / total);
        remainders[i] = exact % total;
        given += parts[i];
    }
    std::vector<std::size_t> order(weights.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return remainders[a] > remainders[b]; });
    // A part with a non-zero remainder is below its weight, so +1 keeps it
    // within; there are at least `amount - given` such parts.
    for (std::size_t k = 0; given < amount; ++k) {
        ++parts[order[k]];
        ++given;
    }
    return parts;
}

std::string printable(std::string_view text) {
    std::string out;
    for (const unsigned char c : text.substr(0, 64)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
            out += escaped;
        }
    }
    if (text.size() > 64)
        out += "...";
    return out;
}

CapacityPool::CapacityPool(Policy policy)
    : policy_(std::move(policy)) {
    if (const auto problems = validate_policy(policy_); !problems.empty())
        throw PolicyError("given to the capacity pool", problems);
    for (const auto& p : policy_.partitions)
        caps_[p.name] = p.entitlement;
}

CpuAmount CapacityPool::cap(std::string_view partition) const {
    const auto it = caps_.find(partition);
    if (it == caps_.end())
        throw std::out_of_range("no partition " + std::string(partition) + " in the pool");
    return it->second;
}

CpuAmount CapacityPool::total() const {
    CpuAmount total;
    for (const auto& [name, cap] : caps_)
        total += cap;
    return total;
}

DirectiveOutcome CapacityPool::evaluate(const Directive& d) const {
    if (!policy_.find(d.from))
        return refuse(d, "directive from unknown partition '" + printable(d.from) + "'", *this);
    if (d.from != policy_.privileged)
        return refuse(d,
                      "partition " + d.from + " is not WLM-privileged: only " + policy_.privileged +
                          " may issue capacity directives",
                      *this);
    const auto* target = policy_.find(d.target);
    if (!target)
        return refuse(d,
                      "unknown target partition '" + printable(d.target) +
                          "' (known: " + known_partitions(policy_) + ")",
                      *this);
    if (!std::isfinite(d.cpu))
        return refuse(d, "cpu " + number_text(d.cpu) + " is not a finite number", *this);
    if (d.cpu <= 0)
        return refuse(d, "cpu " + number_text(d.cpu) + " must be positive", *this);
    if (d.cpu > kAbsurdCpus)
        return refuse(d,
                      "cpu " + number_text(d.cpu) + " is absurd (more than " +
                          number_text(kAbsurdCpus) + " CPUs)",
                      *this);

    if (d.donor) {
        if (!policy_.find(*d.donor))
            return refuse(d,
                          "unknown donor partition '" + printable(*d.donor) +
                              "' (known: " + known_partitions(policy_) + ")",
                          *this);
        if (*d.donor == target->name)
            return refuse(d, "the donor must be another partition than the target", *this);
    }

    std::vector<std::string> notes;
    const auto requested = CpuAmount::from_cpus(d.cpu);
    const auto wanted = std::clamp(requested, target->min, target->max);
    if (requested > target->max)
        notes.push_back(number_text(d.cpu) + " CPU is above " + target->name + "'s maximum, " +
                        cpus_text(target->max));
    else if (requested < target->min)
        notes.push_back(number_text(d.cpu) + " CPU is below " + target->name + "'s minimum, " +
                        cpus_text(target->min));

    const auto current = cap(target->name);
    const std::int64_t delta = (wanted - current).units;
    // The others, each with how much it can give (delta > 0: surplus above
    // min) or take (delta < 0: room below max).
    std::vector<const PartitionPolicy*> others;
    std::vector<std::int64_t> capacity;
    for (const auto& p : policy_.partitions) {
        if (p.name == target->name || (d.donor && p.name != *d.donor))
            continue;
        const auto c = cap(p.name);
        others.push_back(&p);
        capacity.push_back(
            std::max<std::int64_t>(0, delta > 0 ? (c - p.min).units : (p.max - c).units));
    }
    const std::int64_t available =
        std::accumulate(capacity.begin(), capacity.end(), std::int64_t{0});
    const std::int64_t moved = std::min(std::abs(delta), available);
    if (moved < std::abs(delta))
        notes.push_back(
            (d.donor ? *d.donor : std::string("the others")) +
            (delta > 0
                 ? " can give only " + cpus_text({moved}) + " without going below the minimum"
                 : " can take only " + cpus_text({moved}) + " without going above the maximum"));

    DirectiveOutcome outcome;
    outcome.directive = d;
    outcome.granted = current + CpuAmount{delta > 0 ? moved : -moved};
    outcome.changes.push_back({target->name, current, outcome.granted});
    const auto parts = split_proportionally(moved, capacity);
    std::string counterparts;
    for (std::size_t i = 0; i < others.size(); ++i) {
        if (parts[i] == 0)
            continue;
        const auto before = cap(others[i]->name);
        const CpuAmount part{delta > 0 ? -parts[i] : parts[i]};
        outcome.changes.push_back({others[i]->name, before, before + part});
        counterparts +=
            (counterparts.empty() ? "" : ", ") + others[i]->name + " " + cpus_text({parts[i]});
    }
    outcome.verdict = notes.empty() ? Verdict::applied : Verdict::clamped;
    std::string summary;
    if (moved == 0)
        summary = target->name + " stays at " + cpus_text(current);
    else
        summary = target->name + " " + cpus_text(current) + " -> " + cpus_text(outcome.granted) +
                  (delta > 0 ? ", taken from " : ", given to ") + counterparts;
    // Why it was clamped first: the guest's answer has room for 95 bytes.
    std::string reason;
    for (const auto& note : notes)
        reason += note + "; ";
    outcome.reason = reason + summary;
    return outcome;
}

void CapacityPool::restore(const Caps& caps) {
    if (caps.size() != policy_.partitions.size())
        throw std::invalid_argument("restored caps name other partitions than the policy");
    CpuAmount sum;
    for (const auto& p : policy_.partitions) {
        const auto it = caps.find(p.name);
        if (it == caps.end())
            throw std::invalid_argument("restored caps lack partition " + p.name);
        if (it->second < p.min || it->second > p.max)
            throw std::invalid_argument("restored cap of " + p.name + ", " + cpus_text(it->second) +
                                        ", is outside its bounds");
        sum += it->second;
    }
    if (sum != policy_.total_entitlement())
        throw std::invalid_argument("restored caps add up to " + cpus_text(sum) + ", not " +
                                    cpus_text(policy_.total_entitlement()));
    caps_ = caps;
}

void CapacityPool::commit(const DirectiveOutcome& outcome) {
    if (outcome.verdict == Verdict::refused)
        return;
    for (const auto& change : outcome.changes) {
        const auto it = caps_.find(change.partition);
        if (it == caps_.end() || it->second != change.before)
            throw std::logic_error("stale capacity outcome: " + change.partition +
                                   " is no longer at " + cpus_text(change.before) +
                                   "; evaluate the directive again");
    }
    const auto before = total();
    auto next = caps_;
    for (const auto& change : outcome.changes)
        next[change.partition] = change.after;
    CpuAmount after;
    for (const auto& [name, cap] : next)
        after += cap;
    if (after != before)
        throw std::logic_error("capacity outcome would change the pool total");
    caps_ = std::move(next);
}

} // namespace partlink::capacity
