// The manager's bookkeeping: the reports it accepted, one control chart per
// partition, the caps it believes each partition has, and what to do with
// the decider's verdict; each interval it also reports every partition's
// chart to the hypervisor. No sockets and no clock here: callers pass times
// in, so tests can replay a scripted run.
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
// After a chart report fails, reports pause for 1, 2, 4 ... up to this many
// intervals: a silent hypervisor costs PARTLINK_MBOX_TIMEOUT_MS per report.
inline constexpr long kMaxReportBackoff = 32;

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
    std::string error; // the channel failed (the directive was not delivered)
    // Chart reports to the hypervisor this interval.
    std::size_t reports_sent = 0;
    std::size_t reports_failed = 0;
    std::string report_error; // the last failure, "vm2: ..."
    std::string line;         // one line for people
    nlohmann::json log;       // one JSON-lines record
};

// Chart reports to the hypervisor since the start.
struct ReportDelivery {
    std::uint64_t sent = 0;    // answered applied
    std::uint64_t failed = 0;  // not delivered, or not applied
    std::uint64_t skipped = 0; // not sent: backing off after a failure
    std::string last_error;
};

class Manager {
public:
    // `channel` and `reports` must outlive the manager. Directives go to
    // `channel`; every tick reports each partition's chart to `reports`, if
    // not null (with --dry-run it is the device if that opened, while
    // `channel` is the dry run).
    Manager(ManagerConfig config, HypervisorChannel& channel, HypervisorChannel* reports = nullptr);

    // A well-formed report, received at monotonic time `now` (seconds). A
    // new partition beyond kMaxPartitions is counted as rejected instead.
    void on_report(const Report& report, double now);
    // A datagram that parse_report refused.
    void on_rejected(const Rejection& rejection);

    // One decision; call once per interval.
    TickResult tick(double now, double wall);

    const ReportCounters& counters() const noexcept { return counters_; }
    std::uint64_t out_of_order() const noexcept { return out_of_order_; }
    const ReportDelivery& report_delivery() const noexcept { return delivery_; }

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
    void send_reports(TickResult& result);

    ManagerConfig config_;
    HypervisorChannel& channel_;
    HypervisorChannel* reports_;
    Decider decider_;
    std::map<std::string, Partition> partitions_;
    ReportCounters counters_;
    std::uint64_t out_of_order_ = 0;
    std::string last_rejection_;
    ReportDelivery delivery_;
    long report_backoff_ = 0;    // intervals paused after the last failure
    long reports_resume_at_ = 0; // first interval to report in again
};

} // namespace plwlm
