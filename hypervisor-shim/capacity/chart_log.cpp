#include "chart_log.hpp"

#include <cmath>
#include <fstream>

#include "audit_log.hpp"
#include "error.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace partlink::capacity {

namespace {

nlohmann::ordered_json optional_number(const std::optional<double>& value) {
    if (value && std::isfinite(*value))
        return *value;
    return nullptr;
}

std::optional<double> number_from(const json& object, const char* key) {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return std::nullopt;
    return it->get<double>();
}

void parse_lines(std::istream& in, ChartLogContents& contents, bool skip_first) {
    read_json_lines(
        in, [&](const json& item) { contents.records.push_back(chart_record_from_json(item)); },
        contents.problems, skip_first);
}

} // namespace

std::string_view to_string(ChartState state) {
    switch (state) {
    case ChartState::warming_up:
        return "warming-up";
    case ChartState::in_control:
        return "in-control";
    case ChartState::low:
        return "low";
    case ChartState::high:
        return "high";
    }
    return "warming-up";
}

std::optional<ChartState> chart_state_from(std::string_view text) {
    for (const auto state :
         {ChartState::warming_up, ChartState::in_control, ChartState::low, ChartState::high})
        if (to_string(state) == text)
            return state;
    return std::nullopt;
}

nlohmann::ordered_json to_json(const ChartRecord& r) {
    return nlohmann::ordered_json{{"time", format_iso8601(r.time)},
                                  {"from", r.from},
                                  {"partition", r.partition},
                                  {"velocity", optional_number(r.velocity)},
                                  {"trend", optional_number(r.trend)},
                                  {"ewma", optional_number(r.ewma)},
                                  {"lower_limit", optional_number(r.lower_limit)},
                                  {"upper_limit", optional_number(r.upper_limit)},
                                  {"cpu", optional_number(r.cpu)},
                                  {"state", to_string(r.state)}};
}

ChartRecord chart_record_from_json(const json& item) {
    ChartRecord r;
    const auto time = parse_iso8601(item.at("time").get<std::string>());
    if (!time)
        throw Error("'time' is not an ISO-8601 UTC time");
    r.time = *time;
    r.from = item.at("from").get<std::string>();
    r.partition = item.at("partition").get<std::string>();
    r.velocity = number_from(item, "velocity");
    r.trend = number_from(item, "trend");
    r.ewma = number_from(item, "ewma");
    r.lower_limit = number_from(item, "lower_limit");
    r.upper_limit = number_from(item, "upper_limit");
    r.cpu = number_from(item, "cpu");
    const auto state = chart_state_from(item.at("state").get<std::string>());
    if (!state)
        throw Error("unknown chart state '" + item.at("state").get<std::string>() + "'");
    r.state = *state;
    return r;
}

// Not synced: a chart point lost in a crash costs nothing, and the manager
// reports every second.
ChartLog::ChartLog(fs::path file)
    : file_(std::move(file), "the WLM chart log", JsonLinesFile::Sync::none) {}

ChartLogContents read_chart_log(const fs::path& file) {
    ChartLogContents contents;
    std::ifstream in(file);
    if (in)
        parse_lines(in, contents, false);
    return contents;
}

std::map<std::string, ChartRecord> latest_chart_records(const fs::path& file,
                                                        std::size_t tail_bytes) {
    std::map<std::string, ChartRecord> latest;
    std::ifstream in(file, std::ios::binary);
    if (!in)
        return latest;
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(std::max<std::streamoff>(0, in.tellg()));
    const std::size_t start = size > tail_bytes ? size - tail_bytes : 0;
    // The tail starts mid-line unless the byte before it ends a line.
    bool mid_line = false;
    if (start > 0) {
        in.seekg(static_cast<std::streamoff>(start - 1));
        mid_line = in.get() != '\n';
    }
    in.seekg(static_cast<std::streamoff>(start));
    ChartLogContents contents;
    parse_lines(in, contents, mid_line);
    for (auto& record : contents.records)
        latest.insert_or_assign(record.partition, std::move(record));
    return latest;
}

} // namespace partlink::capacity
