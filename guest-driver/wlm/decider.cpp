#include "decider.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace plwlm {
namespace {

std::string cpus(double v) {
    std::ostringstream s;
    s.precision(3);
    s << v;
    return s.str();
}

double busy(const PartitionStatus& p) {
    return p.c + p.steal;
}

} // namespace

Decider::Decider(DeciderConfig config)
    : config_(config) {
    if (!(config_.step > 0) || !std::isfinite(config_.step))
        throw std::invalid_argument("decider: step must be a positive number of CPUs");
    if (!(config_.min_step > 0) || config_.min_step > config_.step)
        throw std::invalid_argument("decider: min_step must be positive and at most step");
    if (!(config_.dead_band >= 0) || !std::isfinite(config_.dead_band))
        throw std::invalid_argument("decider: dead_band must be a non-negative number");
    if (config_.persistence < 1 || config_.settle_intervals < 0 || config_.reverse_hold < 0)
        throw std::invalid_argument(
            "decider: persistence must be >= 1, settle and reverse hold >= 0 intervals");
}

bool Decider::in_need(const PartitionStatus& p) const {
    const bool cpu_bound = busy(p) >= config_.busy_threshold || p.steal >= config_.steal_threshold;
    return p.fresh && p.chart == ChartState::out_of_control_low &&
           p.deviation <= -config_.dead_band && cpu_bound;
}

bool Decider::reversal(const std::string& donor, const std::string& receiver) const {
    // Capacity that just flowed receiver -> donor must not flow straight back.
    const auto it = moved_at_.find({receiver, donor});
    return it != moved_at_.end() && interval_ - it->second <= config_.reverse_hold;
}

Decision Decider::decide(const std::vector<PartitionStatus>& partitions) {
    ++interval_;

    std::vector<const PartitionStatus*> needy;
    std::map<std::string, int> streaks;
    for (const auto& p : partitions) {
        if (in_need(p)) {
            const auto it = need_streak_.find(p.name);
            streaks[p.name] = (it == need_streak_.end() ? 0 : it->second) + 1;
            if (streaks[p.name] >= config_.persistence)
                needy.push_back(&p);
        }
    }
    // Partitions that left the list or stopped being in need start over.
    need_streak_ = std::move(streaks);

    if (last_directive_ && interval_ - *last_directive_ <= config_.settle_intervals)
        return {std::nullopt, "hold: settling after the last directive (interval " +
                                  std::to_string(interval_ - *last_directive_) + " of " +
                                  std::to_string(config_.settle_intervals) + ")"};
    if (needy.empty())
        return {std::nullopt, "hold: no partition needs CPU"};

    // The one furthest below its trend first; names break ties, so the same
    // inputs always give the same decision.
    std::sort(needy.begin(), needy.end(), [](const auto* x, const auto* y) {
        return x->deviation != y->deviation ? x->deviation < y->deviation : x->name < y->name;
    });

    std::string why;
    for (const auto* receiver : needy) {
        const double room = receiver->max_cap - receiver->cap;
        if (room < config_.min_step) {
            why = receiver->name + " needs CPU but is at its maximum of " +
                  cpus(receiver->max_cap) + " CPUs";
            continue;
        }
        const PartitionStatus* donor = nullptr;
        for (const auto& p : partitions) {
            // A chart that is low within the dead band, or low while the
            // partition idles, is no need: such a partition can still give.
            if (&p == receiver || !p.fresh || in_need(p) || busy(p) > config_.spare_threshold ||
                p.steal >= config_.steal_threshold || p.cap - p.min_cap < config_.min_step ||
                reversal(p.name, receiver->name))
                continue;
            if (!donor || busy(p) < busy(*donor) ||
                (busy(p) == busy(*donor) && p.name < donor->name))
                donor = &p;
        }
        if (!donor) {
            why = receiver->name +
                  " needs CPU but no other partition has spare capacity above its minimum";
            continue;
        }
        const double amount = std::min({config_.step, donor->cap - donor->min_cap, room});
        Shift shift{receiver->name, donor->name, amount, receiver->cap + amount,
                    donor->cap - amount};
        last_directive_ = interval_;
        moved_at_[{donor->name, receiver->name}] = interval_;
        need_streak_.erase(receiver->name);
        auto reason = "shift " + cpus(amount) + " CPU " + donor->name + " -> " + receiver->name +
                      ": " + receiver->name + " below its velocity trend by " +
                      cpus(-receiver->deviation * 100) + "% and CPU-bound";
        return {std::move(shift), std::move(reason)};
    }
    return {std::nullopt, "hold: " + why};
}

} // namespace plwlm
