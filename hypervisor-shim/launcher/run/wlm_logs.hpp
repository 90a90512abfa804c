// The workload manager's logs as the launcher shows them: the capacity
// audit log (RUN/wlm-audit.jsonl, `partlink wlm log`) and the control chart
// log (RUN/wlm-chart.jsonl, the S and CHART columns of `partlink status`).
// Both are JSON lines that partlinkd appends to (capacity/audit_log.hpp,
// capacity/chart_log.hpp).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "capacity/audit_log.hpp"
#include "capacity/chart_log.hpp"

namespace partlink {

// `partlink wlm log`: one row per directive, oldest first.
std::string render_audit_table(const std::vector<capacity::AuditRecord>& records);
// `partlink wlm log --json`: the records as JSON lines, as logged.
std::string render_audit_json_lines(const std::vector<capacity::AuditRecord>& records);

// The last chart point of every partition (capacity::latest_chart_records
// reads only the tail of the growing log).
using LatestChart = std::map<std::string, capacity::ChartRecord>;
LatestChart latest_chart(const std::filesystem::path& chart_log);
// "in-control" etc.; S as "%.3g" or "-" if undefined.
std::string chart_state_text(const capacity::ChartRecord& record);
std::string velocity_text(const std::optional<capacity::ChartRecord>& record);
nlohmann::ordered_json chart_json(const capacity::ChartRecord& record);

} // namespace partlink
