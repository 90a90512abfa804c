#include "run/wlm_logs.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cli/text_table.hpp"
#include "error.hpp"

namespace partlink {

namespace fs = std::filesystem;
namespace cap = partlink::capacity;
using nlohmann::json;

namespace {

std::string number(double value) {
    if (std::isnan(value))
        return "nan";
    if (std::isinf(value))
        return value > 0 ? "inf" : "-inf";
    char text[32];
    std::snprintf(text, sizeof text, "%.5g", value);
    return text;
}

std::string mib_text(const std::optional<std::uint64_t>& mib) {
    return mib ? std::to_string(*mib) : "?";
}

std::string directive_text(const cap::AuditRecord& r) {
    if (r.memory_mib)
        return r.target + " memory " + std::to_string(*r.memory_mib) + " MiB";
    return r.target + " cpu " + number(r.cpu) + (r.donor ? " donor " + *r.donor : "");
}

// CPU: every cap that moved; memory: the target's RAM before -> its balloon
// target, and where the guest got to if it was not there yet.
std::string changes_text(const cap::AuditRecord& r) {
    if (r.balloon) {
        const auto& b = *r.balloon;
        return r.target + " " + mib_text(b.before_mib) + "->" + std::to_string(b.target_mib) +
               " MiB" + (b.reached ? "" : " (at " + mib_text(b.actual_mib) + ")");
    }
    std::string out;
    for (const auto& c : r.changes)
        out += (out.empty() ? "" : ", ") + c.partition + " " + number(c.before.cpus()) + "->" +
               number(c.after.cpus());
    return out.empty() ? "-" : out;
}

std::string verification_text(const cap::AuditRecord& r) {
    if (r.balloon)
        return r.balloon->reached ? "ok" : "moving";
    if (!r.verification)
        return "-";
    return r.verification->ok ? "ok" : "FAILED";
}

} // namespace

std::string render_audit_table(const std::vector<cap::AuditRecord>& records) {
    Table rows = {{"TIME", "FROM", "DIRECTIVE", "RESULT", "CHANGES", "CHECK", "REASON"}};
    for (const auto& r : records)
        rows.push_back({cap::format_iso8601(r.time), r.from, directive_text(r),
                        std::string(cap::to_string(r.result)), changes_text(r),
                        verification_text(r), r.reason.empty() ? "-" : r.reason});
    return render_table(rows);
}

std::string render_audit_json_lines(const std::vector<cap::AuditRecord>& records) {
    std::string out;
    for (const auto& r : records)
        out += cap::to_json(r).dump() + "\n";
    return out;
}

LatestChart latest_chart(const fs::path& chart_log) {
    try {
        return cap::latest_chart_records(chart_log);
    } catch (const std::exception&) {
        return {}; // status shows what it can
    }
}

std::string chart_state_text(const cap::ChartRecord& record) {
    return std::string(cap::to_string(record.state));
}

std::string velocity_text(const std::optional<cap::ChartRecord>& record) {
    if (!record || !record->velocity)
        return "-";
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", *record->velocity);
    return text;
}

nlohmann::ordered_json chart_json(const cap::ChartRecord& record) {
    return cap::to_json(record);
}

} // namespace partlink
