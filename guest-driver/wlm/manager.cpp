#include "manager.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace plwlm {
namespace {

using nlohmann::json;

// The deviation is relative to |trend|; a trend near zero must not turn noise
// into an enormous relative shift.
constexpr double kMinTrendForDeviation = 1e-2;

json nullable(const std::optional<double>& v) {
    return v ? json(*v) : json(nullptr);
}

std::string fixed(double v, int digits = 2) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(digits);
    s << v;
    return s.str();
}

ChartReport chart_report(const std::string& name, const Manager::Partition& p) {
    ChartReport r;
    r.target = name;
    r.velocity = p.last.s;
    r.trend = p.last.s_trend;
    if (p.chart.center())
        r.ewma = p.chart.ewma();
    r.lower_limit = p.chart.lower_limit();
    r.upper_limit = p.chart.upper_limit();
    r.cpu = p.last.c;
    r.state = p.chart.state();
    return r;
}

double deviation(const ControlChart& chart, const Report& last) {
    const auto centre = chart.center();
    if (!centre || !last.s_trend)
        return 0;
    return (chart.ewma() - *centre) / std::max(std::abs(*last.s_trend), kMinTrendForDeviation);
}

} // namespace

Manager::Manager(ManagerConfig config, HypervisorChannel& channel, HypervisorChannel* reports)
    : config_(std::move(config))
    , channel_(channel)
    , reports_(reports)
    , decider_(config_.decider) {
    if (!(config_.interval > 0) || !std::isfinite(config_.interval))
        throw UsageError("the interval must be a positive number of seconds");
    if (!(config_.min_cap > 0) || config_.min_cap > config_.max_cap ||
        !(config_.default_cap >= config_.min_cap && config_.default_cap <= config_.max_cap))
        throw UsageError("caps must satisfy 0 < minimum <= default cap <= maximum");
}

void Manager::on_rejected(const Rejection& rejection) {
    counters_.count(rejection);
    last_rejection_ = std::string(to_string(rejection.reason)) + ": " + rejection.detail;
}

void Manager::on_report(const Report& report, double now) {
    auto it = partitions_.find(report.partition);
    if (it == partitions_.end() && partitions_.size() >= kMaxPartitions) {
        on_rejected({RejectReason::bad_value,
                     "more than " + std::to_string(kMaxPartitions) + " partitions"});
        return;
    }
    counters_.count(report);
    if (it == partitions_.end()) {
        const auto cap = config_.caps.find(report.partition);
        Partition p{ControlChart(config_.chart),
                    report,
                    now,
                    cap == config_.caps.end() ? config_.default_cap : cap->second,
                    config_.max_cap,
                    0};
        it = partitions_.emplace(report.partition, std::move(p)).first;
    } else {
        auto& p = it->second;
        if (report.seq <= p.last.seq) {
            // A duplicate or late datagram carries an older time; a restarted
            // monitor counts from 0 again with a newer one.
            if (report.time <= p.last.time) {
                ++out_of_order_;
                return;
            }
            // Its fit starts over, so must the chart.
            p.chart.reset();
            ++p.restarts;
        }
        p.last = report;
        p.last_seen = now;
    }
    auto& p = it->second;
    if (report.s && report.s_trend)
        p.chart.add(*report.s - *report.s_trend);
}

std::vector<PartitionStatus> Manager::statuses(double now) const {
    std::vector<PartitionStatus> out;
    for (const auto& [name, p] : partitions_) {
        PartitionStatus s;
        s.name = name;
        s.chart = p.chart.state();
        s.deviation = deviation(p.chart, p.last);
        s.c = p.last.c;
        s.steal = p.last.steal;
        s.cap = p.cap;
        s.min_cap = config_.min_cap;
        s.max_cap = p.max_cap;
        s.fresh = now - p.last_seen <= config_.stale_intervals * config_.interval;
        out.push_back(std::move(s));
    }
    return out;
}

void Manager::apply(const Shift& shift, const Answer& answer) {
    auto& receiver = partitions_.at(shift.receiver);
    auto& donor = partitions_.at(shift.donor);
    const double moved = answer.value - receiver.cap;
    // A clamp that gave nothing means the receiver is at the operator's
    // maximum: remember it, or the same directive would repeat forever.
    if (answer.outcome == Outcome::clamped && moved <= 1e-9)
        receiver.max_cap = receiver.cap;
    receiver.cap = answer.value;
    donor.cap = std::max(donor.cap - moved, config_.min_cap);
    // Both partitions' capacity changed: what their charts showed has been
    // acted on.
    receiver.chart.rearm();
    donor.chart.rearm();
}

void Manager::send_reports(TickResult& result) {
    if (!reports_ || partitions_.empty())
        return;
    const long interval = decider_.interval();
    if (interval < reports_resume_at_) {
        delivery_.skipped += partitions_.size();
        return;
    }
    for (const auto& [name, p] : partitions_) {
        std::string error;
        bool channel_failed = false;
        try {
            const auto answer = reports_->report(chart_report(name, p));
            if (accepted(answer)) {
                ++delivery_.sent;
                ++result.reports_sent;
                continue;
            }
            error = std::string(to_string(answer.outcome)) +
                    (answer.reason.empty() ? "" : ": " + answer.reason);
            channel_failed = true;
        } catch (const UsageError& e) {
            // This partition cannot be reported (its name is too long for the
            // mailbox); the others can.
            error = e.what();
        } catch (const std::exception& e) {
            error = e.what();
            channel_failed = true;
        }
        ++delivery_.failed;
        ++result.reports_failed;
        result.report_error = name + ": " + error;
        delivery_.last_error = result.report_error;
        if (channel_failed) {
            // The rest of this interval's reports would most likely fail the
            // same way, each after the device's timeout: pause.
            report_backoff_ =
                report_backoff_ == 0 ? 1 : std::min(2 * report_backoff_, kMaxReportBackoff);
            reports_resume_at_ = interval + 1 + report_backoff_;
            return;
        }
    }
    report_backoff_ = 0;
}

TickResult Manager::tick(double now, double wall) {
    TickResult result;
    const auto status = statuses(now);
    result.decision = decider_.decide(status);

    if (const auto& shift = result.decision.shift) {
        result.directive = Directive{shift->receiver, shift->receiver_cap, shift->donor};
        try {
            result.answer = channel_.send(*result.directive);
            if (accepted(*result.answer))
                apply(*shift, *result.answer);
        } catch (const std::exception& e) {
            result.error = e.what();
        }
    }

    send_reports(result);

    std::ostringstream line;
    line << "[" << decider_.interval() << "] " << result.decision.reason;
    if (result.answer) {
        line << " => " << to_string(result.answer->outcome) << " " << result.directive->target
             << "=" << fixed(result.answer->value) << " CPU";
        if (!result.answer->reason.empty() && result.answer->outcome != Outcome::dry_run)
            line << " (" << result.answer->reason << ")";
    } else if (!result.error.empty()) {
        line << " => not delivered: " << result.error;
    }
    json parts = json::array();
    for (const auto& s : status) {
        const auto& p = partitions_.at(s.name);
        line << " | " << s.name << " " << to_string(s.chart) << (s.fresh ? "" : " (silent)")
             << " S=" << (p.last.s ? fixed(*p.last.s) : "-")
             << " trend=" << (p.last.s_trend ? fixed(*p.last.s_trend) : "-") << " C=" << fixed(s.c)
             << " steal=" << fixed(s.steal) << " cap=" << fixed(p.cap);
        parts.push_back({
            {"partition", s.name},
            {"state", to_string(s.chart)},
            {"fresh", s.fresh},
            {"seq", p.last.seq},
            {"c", s.c},
            {"t", p.last.t},
            {"steal", s.steal},
            {"s", nullable(p.last.s)},
            {"s_trend", nullable(p.last.s_trend)},
            {"r2", nullable(p.last.r2)},
            {"ewma", p.chart.center() ? json(p.chart.ewma()) : json(nullptr)},
            {"center", nullable(p.chart.center())},
            {"lcl", nullable(p.chart.lower_limit())},
            {"ucl", nullable(p.chart.upper_limit())},
            {"deviation", s.deviation},
            {"cap", p.cap},
            {"restarts", p.restarts},
        });
    }
    if (status.empty())
        line << " | no reports yet";
    if (result.reports_failed > 0)
        line << " | chart reports to the hypervisor: " << result.reports_failed << " failed ("
             << result.report_error << ")";
    result.line = line.str();

    json log = {
        {"time", wall},
        {"interval", decider_.interval()},
        {"decision", result.decision.shift ? "shift" : "hold"},
        {"reason", result.decision.reason},
        {"partitions", std::move(parts)},
        {"reports",
         {{"accepted", counters_.accepted()},
          {"rejected", counters_.rejected()},
          {"out_of_order", out_of_order_},
          {"last_rejection", last_rejection_}}},
    };
    if (result.directive) {
        log["directive"] = {
            {"target", result.directive->target},
            {"cpu", result.directive->cpu},
            {"donor", result.directive->donor ? json(*result.directive->donor) : json(nullptr)},
            {"channel", channel_.name()}};
    }
    if (result.answer)
        log["answer"] = {{"outcome", to_string(result.answer->outcome)},
                         {"reason", result.answer->reason},
                         {"value", result.answer->value}};
    if (!result.error.empty())
        log["error"] = result.error;
    if (reports_)
        log["hv_reports"] = {{"sent", delivery_.sent},
                             {"failed", delivery_.failed},
                             {"skipped", delivery_.skipped},
                             {"last_error", delivery_.last_error}};
    result.log = std::move(log);
    return result;
}

} // namespace plwlm
