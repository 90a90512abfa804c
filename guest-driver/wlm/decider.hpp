// The manager's decision, once per interval: shift capacity from one
// partition to another, or hold. Pure logic: no clocks, no I/O.
//
// A shift needs, all at once (README.md has the reasoning):
//  * a receiver whose chart has been out-of-control-low, beyond the dead
//    band, and CPU-bound (busy or stolen from), for `persistence` intervals
//    in a row;
//  * a donor with spare capacity: the least busy other partition that is not
//    itself in need (a chart low within the dead band, or low while idle, is
//    no need) and is above its minimum;
//  * no directive in the last `settle_intervals` intervals;
//  * no shift in the opposite direction between the same two partitions in
//    the last `reverse_hold` intervals.
// At most one receiver per decision.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control_chart.hpp"

namespace plwlm {

struct PartitionStatus {
    std::string name;
    ChartState chart = ChartState::warming_up;
    // How far the chart's EWMA has left its centre, relative to the size of
    // the velocity itself: (EWMA − centre) / |trend|. Compared with the dead
    // band, so that a statistically significant but tiny shift does nothing.
    double deviation = 0;
    double c = 0;     // CPU utilization seen in the guest
    double steal = 0; // CPU time the guest wanted and did not get
    double cap = 0;   // current CPU cap, in CPUs
    double min_cap = 0;
    double max_cap = 0;
    // Reported recently; a silent partition is neither receiver nor donor.
    bool fresh = true;
};

struct DeciderConfig {
    double step = 0.25;     // CPUs moved by one directive, at most
    double min_step = 0.05; // a smaller shift is not worth a directive
    double dead_band = 0.05;
    int persistence = 2;
    int settle_intervals = 3;
    int reverse_hold = 30;
    // A receiver must be CPU-bound: C + steal at least busy_threshold, or
    // steal at least steal_threshold (the hypervisor is withholding CPU it
    // wants). Velocity can also fall for reasons CPU does not cure (waiting
    // on I/O, a slow peer); those get nothing.
    double busy_threshold = 0.85;
    double steal_threshold = 0.05;
    // A donor must have room: C + steal at most this, and little steal.
    double spare_threshold = 0.6;
};

struct Shift {
    std::string receiver;
    std::string donor;
    double amount = 0;       // CPUs
    double receiver_cap = 0; // the receiver's new cap
    double donor_cap = 0;    // the donor's new cap
};

struct Decision {
    std::optional<Shift> shift;
    std::string reason; // one line, for people
};

class Decider {
public:
    explicit Decider(DeciderConfig config = {});

    // Call exactly once per interval.
    Decision decide(const std::vector<PartitionStatus>& partitions);

    const DeciderConfig& config() const noexcept { return config_; }
    long interval() const noexcept { return interval_; }

private:
    bool in_need(const PartitionStatus& p) const;
    bool reversal(const std::string& donor, const std::string& receiver) const;

    DeciderConfig config_;
    long interval_ = 0;
    std::optional<long> last_directive_;
    std::map<std::string, int> need_streak_;
    // Latest interval at which capacity moved donor -> receiver.
    std::map<std::pair<std::string, std::string>, long> moved_at_;
};

} // namespace plwlm
