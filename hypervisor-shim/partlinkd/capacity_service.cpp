#include "capacity_service.hpp"

#include <cmath>
#include <variant>

#include "mailbox.hpp"
#include "qmp_balloon.hpp"

namespace partlink::daemon {

namespace cap = partlink::capacity;

namespace {

std::uint32_t answer_result(cap::AuditResult result) {
    switch (result) {
    case cap::AuditResult::applied:
        return PARTLINK_MBOX_APPLIED;
    case cap::AuditResult::clamped:
        return PARTLINK_MBOX_CLAMPED;
    case cap::AuditResult::failed:
        return PARTLINK_MBOX_FAILED;
    case cap::AuditResult::refused:
        break;
    }
    return PARTLINK_MBOX_REFUSED;
}

cap::ChartState chart_state(std::uint32_t state) {
    switch (state) {
    case PARTLINK_CHART_IN_CONTROL:
        return cap::ChartState::in_control;
    case PARTLINK_CHART_LOW:
        return cap::ChartState::low;
    case PARTLINK_CHART_HIGH:
        return cap::ChartState::high;
    default:
        return cap::ChartState::warming_up;
    }
}

// The caps the cgroups hold, if they are a state the pool could be in: every
// group readable and limited, each cap within its bounds, the same total.
std::optional<cap::Caps> caps_in_cgroups(const cap::RunCapacityConfig& config,
                                         cap::CpuController& controller) {
    cap::Caps caps;
    cap::CpuAmount total;
    for (const auto& p : config.policy.partitions) {
        try {
            const auto held = controller.cap(config.cgroups.at(p.name));
            if (!held.quota_us || held.period_us != cap::kDefaultPeriodUs)
                return std::nullopt;
            const cap::CpuAmount amount{static_cast<std::int64_t>(*held.quota_us)};
            if (amount < p.min || amount > p.max)
                return std::nullopt;
            caps[p.name] = amount;
            total += amount;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    if (total != config.policy.total_entitlement())
        return std::nullopt;
    return caps;
}

// What a refused request asked for, as its audit line says it.
cap::AuditRecord asked(std::string target, double cpu,
                       std::optional<std::int64_t> memory_mib = std::nullopt) {
    cap::AuditRecord record;
    record.target = std::move(target);
    record.cpu = cpu;
    record.memory_mib = memory_mib;
    return record;
}

} // namespace

std::int64_t to_micro_cpus(cap::CpuAmount amount) {
    return amount.units * (PARTLINK_MBOX_MICRO / cap::CpuAmount::kUnitsPerCpu);
}

CapacityService::CapacityService(std::string why)
    : off_reason_(std::move(why)) {}

CapacityService::CapacityService(cap::RunCapacityConfig config,
                                 std::shared_ptr<cap::CpuController> controller,
                                 cap::EnforcerOptions options, cap::BalloonOpener open_balloon,
                                 cap::MemoryEnforcerOptions memory_options)
    : config_(std::move(config))
    , controller_(std::move(controller)) {
    pool_.emplace(config_->policy);
    if (auto held = caps_in_cgroups(*config_, *controller_)) {
        pool_->restore(*held);
        start_note_ = "capacity pool taken over from the cgroups' caps";
    } else {
        start_note_ = "capacity pool starts at the entitlements";
    }
    enforcer_.emplace(controller_, config_->cgroups, std::move(options));
    if (!open_balloon)
        open_balloon = qmp_balloon_opener(config_->balloons);
    memory_enforcer_.emplace(std::move(open_balloon), std::move(memory_options));
    audit_log_.emplace(config_->audit_log);
    chart_log_.emplace(config_->chart_log);
}

void CapacityService::audit(const cap::AuditRecord& record) {
    try {
        audit_log_->append(record);
    } catch (const std::exception& e) {
        // What was done is done: the guest still gets its answer, and the
        // daemon's log says that the audit log misses a line.
        if (log_)
            log_(std::string("audit log: ") + e.what() + "; not logged: " +
                 cap::to_json(record).dump(-1, ' ', false,
                                           nlohmann::json::error_handler_t::replace));
    }
}

partlink_mbox_answer CapacityService::refuse_logged(const Sender& from, cap::AuditRecord record,
                                                    const std::string& reason) {
    // A guest looping on refused requests must not turn the audit log into
    // its disk-filling, fsync-per-request channel: beyond a budget per
    // sender and minute, refusals are answered but not logged, and the
    // daemon's log says how many were left out.
    const auto now = std::chrono::steady_clock::now();
    auto& budget = refusals_[from.name];
    if (now - budget.since >= kRefusalWindow) {
        if (budget.suppressed && log_)
            log_(from.name + ": " + std::to_string(budget.suppressed) +
                 " refused requests not written to the audit log (more than " +
                 std::to_string(kAuditedRefusals) + " a minute)");
        budget = {now, 0, 0};
    }
    if (++budget.count > kAuditedRefusals) {
        ++budget.suppressed;
        return make_answer(PARTLINK_MBOX_REFUSED, 0, reason);
    }
    record.time = std::chrono::system_clock::now();
    record.from = from.name;
    record.result = cap::AuditResult::refused;
    record.reason = reason;
    audit(record);
    return make_answer(PARTLINK_MBOX_REFUSED, 0, reason);
}

partlink_mbox_answer CapacityService::set_cpu(const Sender& from, const SetCpu& request) {
    cap::Directive directive;
    directive.from = from.name;
    directive.target = request.target;
    directive.cpu = static_cast<double>(request.micro_cpus) / PARTLINK_MBOX_MICRO;
    directive.donor = request.donor;
    const auto outcome = pool_->evaluate(directive);
    const auto record = enforcer_->enforce(outcome);
    if (record.result != cap::AuditResult::failed)
        pool_->commit(outcome);
    audit(record);
    const auto granted =
        record.result == cap::AuditResult::failed || outcome.verdict == cap::Verdict::refused
            ? (outcome.changes.empty() ? cap::CpuAmount{} : outcome.changes.front().before)
            : outcome.granted;
    return make_answer(answer_result(record.result), to_micro_cpus(granted), record.reason);
}

partlink_mbox_answer CapacityService::set_memory(const Sender& from, const SetMemory& request) {
    const cap::MemoryOutcome outcome = cap::evaluate_memory(
        pool_->policy(), config_->boot_memory(), {from.name, request.target, request.mib});
    if (outcome.verdict == cap::Verdict::refused)
        return refuse_logged(from, asked(request.target, NAN, request.mib), outcome.reason);
    const auto record = memory_enforcer_->enforce(outcome);
    audit(record);
    const std::int64_t granted = record.result == cap::AuditResult::failed
                                     ? 0
                                     : static_cast<std::int64_t>(outcome.target_mib);
    return make_answer(answer_result(record.result), granted, record.reason);
}

partlink_mbox_answer CapacityService::handle(const Sender& from,
                                             std::span<const std::uint8_t> bytes) {
    if (!enabled())
        return make_answer(PARTLINK_MBOX_REFUSED, 0, off_reason_);
    MailboxRequest request;
    try {
        request = decode_request(bytes);
    } catch (const MalformedRequest& e) {
        return refuse_logged(from, asked(describe_raw_request(bytes), NAN),
                             std::string("malformed request: ") + e.what());
    }
    if (!from.wlm) {
        const std::string reason = "partition " + from.name + " is not the WLM partition: only " +
                                   pool_->policy().privileged + " may send requests";
        if (const auto* cpu = std::get_if<SetCpu>(&request))
            return refuse_logged(
                from,
                asked(cpu->target, static_cast<double>(cpu->micro_cpus) / PARTLINK_MBOX_MICRO),
                reason);
        if (const auto* memory = std::get_if<SetMemory>(&request))
            return refuse_logged(from, asked(memory->target, NAN, memory->mib), reason);
        return make_answer(PARTLINK_MBOX_REFUSED, 0, reason);
    }
    if (const auto* cpu = std::get_if<SetCpu>(&request))
        return set_cpu(from, *cpu);
    if (const auto* memory = std::get_if<SetMemory>(&request))
        return set_memory(from, *memory);
    const auto& report = std::get<ChartReport>(request);
    if (!pool_->policy().find(report.target))
        return make_answer(PARTLINK_MBOX_REFUSED, 0,
                           "REPORT for unknown partition '" + report.target + "'");
    cap::ChartRecord record;
    record.time = std::chrono::system_clock::now();
    record.from = from.name;
    record.partition = report.target;
    record.velocity = report.velocity;
    record.trend = report.trend;
    record.ewma = report.ewma;
    record.lower_limit = report.lower_limit;
    record.upper_limit = report.upper_limit;
    record.cpu = report.cpu;
    record.state = chart_state(report.chart_state);
    chart_log_->append(record);
    return make_answer(PARTLINK_MBOX_APPLIED, 0, "recorded");
}

std::string CapacityService::reapply(const std::string& partition) {
    if (!enabled() || !pool_->policy().find(partition))
        return {};
    try {
        const auto& group = config_->cgroups.at(partition);
        const auto want = cap::cap_for(pool_->cap(partition));
        if (controller_->cap(group) == want)
            return {};
        controller_->set_cap(group, want);
        return partition + "'s cgroup set to its pool cap, " + want.describe();
    } catch (const std::exception& e) {
        return "cannot set " + partition + "'s cgroup to its pool cap: " + e.what();
    }
}

} // namespace partlink::daemon
