// The manager's bookkeeping: the reports it accepted, one control chart per
// partition, the caps it believes each partition has, and what to do with
// the decider's verdict. No sockets and no clock here: callers pass times in,
// so tests can replay a scripted run.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control_chart.hpp"
#include "decider.hpp"
#include "hv_client.hpp"
#include "report.hpp"

namespace plwlm {

// More partition names than this are refused: each costs memory and a column
// in every log line, and names are chosen by whoever sends a datagram.
inline constexpr std::size_t kMaxPartitions = 64;

struct ManagerConfig {
    ChartConfig chart;
    DeciderConfig decider;
    double interval = 1.0; // seconds between decisions
    // A partition silent for this many intervals is left out of decisions.
    int stale_intervals = 3;
    // The manager cannot read the operator's policy; it starts from these and
    // learns from the hypervisor's answers (partlinkd clamps regardless).
    double default_cap = 1.0;
    double min_cap = 0.1;
    double max_cap = kMaxDirectiveCpus;
    std::map<std::string, double> caps; // initial cap per partition
};

struct TickResult {
    Decision decision;
    std::optional<Directive> directive;
    std::optional<Answer> answer;
    std::string error;  // the channel failed (the directive was not delivered)
    std::string line;   // one line for people
    nlohmann::json log; // one JSON-lines record
};

class Manager {
public:
    // `channel` must outlive the manager.
    Manager(ManagerConfig config, HypervisorChannel& channel);

    // A well-formed report, received at monotonic time `now` (seconds). A
    // new partition beyond kMaxPartitions is counted as rejected instead.
    void on_report(const Report& report, double now);
    // A datagram that parse_report refused.
    void on_rejected(const Rejection& rejection);

    // One decision; call once per interval.
    TickResult tick(double now, double wall);

    const ReportCounters& counters() const noexcept { return counters_; }
    std::uint64_t out_of_order() const noexcept { return out_of_order_; }

    struct Partition {
        ControlChart chart;
        Report last;
        double last_seen = 0;
        double cap = 0;
        double max_cap = 0;
        std::uint64_t restarts = 0;
    };
    const std::map<std::string, Partition>& partitions() const noexcept { return partitions_; }

private:
    std::vector<PartitionStatus> statuses(double now) const;
    void apply(const Shift& shift, const Answer& answer);

    ManagerConfig config_;
    HypervisorChannel& channel_;
    Decider decider_;
    std::map<std::string, Partition> partitions_;
    ReportCounters counters_;
    std::uint64_t out_of_order_ = 0;
    std::string last_rejection_;
};

} // namespace plwlm
