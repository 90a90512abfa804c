#include "audit_log.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace partlink::capacity {

namespace {

// CPU values as logged: rounded to the pool's 1e-5 CPU resolution.
double logged_cpus(CpuAmount amount) {
    return amount.cpus();
}

nlohmann::ordered_json optional_number(const std::optional<double>& value) {
    return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

std::optional<double> number_or_null(const json& value) {
    if (value.is_null())
        return std::nullopt;
    return value.get<double>();
}

nlohmann::ordered_json cpu_value(double cpu) {
    if (std::isfinite(cpu))
        return cpu;
    return std::isnan(cpu) ? "nan" : (cpu > 0 ? "inf" : "-inf");
}

double cpu_from(const json& value) {
    if (value.is_number())
        return value.get<double>();
    const auto text = value.get<std::string>();
    if (text == "inf")
        return INFINITY;
    if (text == "-inf")
        return -INFINITY;
    return NAN;
}

AuditResult result_from(const std::string& text) {
    for (auto result :
         {AuditResult::applied, AuditResult::clamped, AuditResult::refused, AuditResult::failed})
        if (to_string(result) == text)
            return result;
    throw Error("unknown result '" + text + "'");
}

nlohmann::ordered_json to_json(const PartitionCheck& check) {
    nlohmann::ordered_json item = {{"partition", check.partition},
                                   {"expected", optional_number(check.expected_cpus)},
                                   {"read_back", optional_number(check.read_back_cpus)},
                                   {"matches", check.matches},
                                   {"periods", check.periods},
                                   {"throttled_periods", check.throttled_periods},
                                   {"throttled_usec", check.throttled_usec},
                                   {"usage_usec", check.usage_usec
                                                      ? nlohmann::ordered_json(*check.usage_usec)
                                                      : nlohmann::ordered_json(nullptr)}};
    if (check.usage_approximate)
        item["usage_approximate"] = true;
    if (!check.error.empty())
        item["error"] = check.error;
    return item;
}

PartitionCheck check_from(const json& item) {
    PartitionCheck check;
    check.partition = item.at("partition").get<std::string>();
    check.expected_cpus = number_or_null(item.at("expected"));
    check.read_back_cpus = number_or_null(item.at("read_back"));
    check.matches = item.at("matches").get<bool>();
    check.periods = item.value("periods", std::uint64_t{0});
    check.throttled_periods = item.value("throttled_periods", std::uint64_t{0});
    check.throttled_usec = item.value("throttled_usec", std::int64_t{0});
    if (const auto it = item.find("usage_usec"); it != item.end() && !it->is_null())
        check.usage_usec = it->get<std::int64_t>();
    check.usage_approximate = item.value("usage_approximate", false);
    check.error = item.value("error", std::string());
    return check;
}

nlohmann::ordered_json optional_mib(const std::optional<std::uint64_t>& mib) {
    return mib ? nlohmann::ordered_json(*mib) : nlohmann::ordered_json(nullptr);
}

std::optional<std::uint64_t> mib_or_null(const json& value) {
    if (value.is_null())
        return std::nullopt;
    return value.get<std::uint64_t>();
}

nlohmann::ordered_json to_json(const BalloonCheck& check) {
    nlohmann::ordered_json item = {{"before_mib", optional_mib(check.before_mib)},
                                   {"target_mib", check.target_mib},
                                   {"actual_mib", optional_mib(check.actual_mib)},
                                   {"reached", check.reached},
                                   {"window_ms", check.window_ms}};
    if (!check.error.empty())
        item["error"] = check.error;
    return item;
}

BalloonCheck balloon_from(const json& item) {
    BalloonCheck check;
    check.before_mib = mib_or_null(item.at("before_mib"));
    check.target_mib = item.at("target_mib").get<std::uint64_t>();
    check.actual_mib = mib_or_null(item.at("actual_mib"));
    check.reached = item.at("reached").get<bool>();
    check.window_ms = item.value("window_ms", std::int64_t{0});
    check.error = item.value("error", std::string());
    return check;
}

} // namespace

std::string_view to_string(AuditResult result) {
    switch (result) {
    case AuditResult::applied:
        return "applied";
    case AuditResult::clamped:
        return "clamped";
    case AuditResult::refused:
        return "refused";
    case AuditResult::failed:
        break;
    }
    return "failed";
}

AuditResult audit_result(Verdict verdict) {
    switch (verdict) {
    case Verdict::applied:
        return AuditResult::applied;
    case Verdict::clamped:
        return AuditResult::clamped;
    case Verdict::refused:
        break;
    }
    return AuditResult::refused;
}

std::string format_iso8601(std::chrono::system_clock::time_point time) {
    using namespace std::chrono;
    const auto micros = duration_cast<microseconds>(time.time_since_epoch()).count();
    auto seconds = static_cast<std::time_t>(micros / 1'000'000);
    auto fraction = micros % 1'000'000;
    if (fraction < 0) { // before 1970: keep the fraction positive
        fraction += 1'000'000;
        --seconds;
    }
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char text[40];
    const auto n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(text + n, sizeof text - n, ".%06lldZ", static_cast<long long>(fraction));
    return text;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text) {
    std::tm utc{};
    int micros = 0;
    char zulu = 0;
    int consumed = 0;
    const std::string copy(text);
    if (std::sscanf(copy.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c%n", &utc.tm_year, &utc.tm_mon,
                    &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &micros, &zulu,
                    &consumed) != 8 ||
        zulu != 'Z' || static_cast<std::size_t>(consumed) != copy.size())
        return std::nullopt;
    utc.tm_year -= 1900;
    utc.tm_mon -= 1;
    const std::time_t seconds = ::timegm(&utc);
    return std::chrono::system_clock::time_point(std::chrono::seconds(seconds) +
                                                 std::chrono::microseconds(micros));
}

nlohmann::ordered_json to_json(const AuditRecord& record) {
    using ordered = nlohmann::ordered_json;
    ordered changes = ordered::array();
    for (const auto& change : record.changes)
        changes.push_back({{"partition", change.partition},
                           {"before", logged_cpus(change.before)},
                           {"after", logged_cpus(change.after)}});
    ordered verification = nullptr;
    if (record.verification) {
        ordered partitions = ordered::array();
        for (const auto& check : record.verification->partitions)
            partitions.push_back(to_json(check));
        verification = {{"ok", record.verification->ok},
                        {"window_ms", record.verification->window_ms},
                        {"partitions", std::move(partitions)}};
    }
    ordered directive = {{"target", record.target}};
    if (record.memory_mib)
        directive["memory_mib"] = *record.memory_mib;
    else
        directive["cpu"] = cpu_value(record.cpu);
    if (record.donor)
        directive["donor"] = *record.donor;
    ordered line = {{"time", format_iso8601(record.time)},
                    {"from", record.from},
                    {"directive", std::move(directive)},
                    {"result", to_string(record.result)},
                    {"reason", record.reason},
                    {"changes", std::move(changes)},
                    {"verification", std::move(verification)}};
    if (record.balloon)
        line["memory"] = to_json(*record.balloon);
    return line;
}

AuditRecord audit_record_from_json(const json& item) {
    AuditRecord record;
    const auto time = parse_iso8601(item.at("time").get<std::string>());
    if (!time)
        throw Error("'time' is not an ISO-8601 UTC time");
    record.time = *time;
    record.from = item.at("from").get<std::string>();
    const auto& directive = item.at("directive");
    record.target = directive.at("target").get<std::string>();
    if (const auto mib = directive.find("memory_mib"); mib != directive.end()) {
        record.memory_mib = mib->get<std::int64_t>();
        record.cpu = NAN;
    } else {
        record.cpu = cpu_from(directive.at("cpu"));
    }
    if (const auto donor = directive.find("donor"); donor != directive.end())
        record.donor = donor->get<std::string>();
    record.result = result_from(item.at("result").get<std::string>());
    record.reason = item.value("reason", std::string());
    for (const auto& change : item.at("changes"))
        record.changes.push_back({change.at("partition").get<std::string>(),
                                  CpuAmount::from_cpus(change.at("before").get<double>()),
                                  CpuAmount::from_cpus(change.at("after").get<double>())});
    if (const auto it = item.find("verification"); it != item.end() && !it->is_null()) {
        Verification verification;
        verification.ok = it->at("ok").get<bool>();
        verification.window_ms = it->value("window_ms", std::int64_t{0});
        for (const auto& check : it->at("partitions"))
            verification.partitions.push_back(check_from(check));
        record.verification = std::move(verification);
    }
    if (const auto it = item.find("memory"); it != item.end() && !it->is_null())
        record.balloon = balloon_from(*it);
    return record;
}

AuditLog::AuditLog(fs::path file)
    : file_(std::move(file), "the capacity audit log", JsonLinesFile::Sync::every_line) {}

AuditLogContents read_audit_log(const fs::path& file) {
    std::ifstream in(file);
    if (!in)
        throw Error("cannot read the capacity audit log " + file.string() +
                    ": no directive has been logged yet, or the run directory is wrong");
    AuditLogContents contents;
    read_json_lines(
        in, [&](const json& item) { contents.records.push_back(audit_record_from_json(item)); },
        contents.problems);
    return contents;
}

} // namespace partlink::capacity
