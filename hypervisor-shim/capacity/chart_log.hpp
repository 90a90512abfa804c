// The WLM manager's control charts as the host sees them: one JSON line per
// REPORT the manager sent through the mailbox, appended by partlinkd, read
// by `partlink status` (the last line of each partition) and `partlink wlm
// chart` (all of them).
//
//   {"time":"2026-11-25T09:23:01.123456Z","from":"vm1","partition":"vm2",
//    "velocity":1.12,"trend":1.3,"ewma":-0.2,"lower_limit":-0.15,
//    "upper_limit":0.15,"cpu":0.43,"state":"low"}
//
// A value the manager did not have (S while C barely moves, the limits
// while the chart warms up) is null.  Not fsync'ed: a report is refreshed
// every interval, unlike a directive.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "json_lines.hpp"

namespace partlink::capacity {

// The manager's chart states, as in plwlm's control_chart.hpp.
enum class ChartState { warming_up, in_control, low, high };
std::string_view to_string(ChartState state);
std::optional<ChartState> chart_state_from(std::string_view text);

struct ChartRecord {
    std::chrono::system_clock::time_point time;
    std::string from;
    std::string partition;
    std::optional<double> velocity;
    std::optional<double> trend;
    std::optional<double> ewma;
    std::optional<double> lower_limit;
    std::optional<double> upper_limit;
    std::optional<double> cpu;
    ChartState state = ChartState::warming_up;
};

nlohmann::ordered_json to_json(const ChartRecord& record);
// Throws nlohmann::json::exception or Error on a line that is not a record.
ChartRecord chart_record_from_json(const nlohmann::json& json);

class ChartLog {
public:
    explicit ChartLog(std::filesystem::path file); // created, appended to
    void append(const ChartRecord& record) { file_.append(to_json(record)); }
    const std::filesystem::path& path() const { return file_.path(); }

private:
    JsonLinesFile file_;
};

struct ChartLogContents {
    std::vector<ChartRecord> records;
    std::vector<std::string> problems; // "line 7: ...", reading goes on
};

// Every record.  A missing file reads as no records.
ChartLogContents read_chart_log(const std::filesystem::path& file);

// The last record of each partition among the last `tail_bytes` of the file
// (it grows by a line per partition per interval; status needs only the
// end).  A missing file reads as none.
std::map<std::string, ChartRecord> latest_chart_records(const std::filesystem::path& file,
                                                        std::size_t tail_bytes = 64 * 1024);

} // namespace partlink::capacity
