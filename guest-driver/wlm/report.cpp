#include "report.hpp"

#include <cmath>
#include <numeric>

#include <nlohmann/json.hpp>

namespace plwlm {
namespace {

using nlohmann::json;

// The wall clock of a guest that booted with no RTC can be near zero; a year
// 5000 timestamp is not a clock at all.
constexpr double kMaxTime = 1e11;
// Integers a double (and so every JSON reader) holds exactly.
constexpr std::uint64_t kMaxSeq = (std::uint64_t{1} << 53);

struct Invalid {
    RejectReason reason;
    std::string detail;
};

double number(const json& j, const char* key, double lo, double hi) {
    const auto it = j.find(key);
    if (it == j.end())
        throw Invalid{RejectReason::bad_schema, std::string("missing \"") + key + "\""};
    if (!it->is_number())
        throw Invalid{RejectReason::bad_schema, std::string("\"") + key + "\" is not a number"};
    const double v = it->get<double>();
    if (!std::isfinite(v) || v < lo || v > hi)
        throw Invalid{RejectReason::bad_value, std::string("\"") + key + "\" out of range"};
    return v;
}

std::optional<double> nullable(const json& j, const char* key, double lo, double hi,
                               bool required) {
    const auto it = j.find(key);
    if (it == j.end()) {
        if (required)
            throw Invalid{RejectReason::bad_schema, std::string("missing \"") + key + "\""};
        return std::nullopt;
    }
    if (it->is_null())
        return std::nullopt;
    return number(j, key, lo, hi);
}

Report decode(const json& j) {
    if (!j.is_object())
        throw Invalid{RejectReason::bad_schema, "not a JSON object"};
    static constexpr std::string_view kKnown[] = {"partition", "time", "c",     "t",  "s",
                                                  "s_trend",   "r2",   "steal", "seq"};
    for (const auto& [key, value] : j.items()) {
        bool known = false;
        for (const auto k : kKnown)
            known = known || key == k;
        if (!known)
            throw Invalid{RejectReason::bad_schema, "unknown key"};
    }
    Report r;
    const auto name = j.find("partition");
    if (name == j.end() || !name->is_string())
        throw Invalid{RejectReason::bad_schema, "\"partition\" missing or not a string"};
    r.partition = name->get<std::string>();
    if (!valid_partition_name(r.partition))
        throw Invalid{RejectReason::bad_value, "\"partition\" is not a valid partition name"};
    r.time = number(j, "time", 0, kMaxTime);
    r.c = number(j, "c", 0, 1);
    r.t = number(j, "t", 0, 1);
    r.steal = number(j, "steal", 0, 1);
    r.s = nullable(j, "s", -kMaxAbsVelocity, kMaxAbsVelocity, true);
    r.s_trend = nullable(j, "s_trend", -kMaxAbsVelocity, kMaxAbsVelocity, true);
    r.r2 = nullable(j, "r2", 0, 1, false);
    const auto seq = j.find("seq");
    if (seq == j.end() || !seq->is_number_integer())
        throw Invalid{RejectReason::bad_schema, "\"seq\" missing or not an integer"};
    if (seq->is_number_unsigned()) {
        r.seq = seq->get<std::uint64_t>();
        if (r.seq > kMaxSeq)
            throw Invalid{RejectReason::bad_value, "\"seq\" out of range"};
    } else if (seq->get<std::int64_t>() < 0) {
        throw Invalid{RejectReason::bad_value, "\"seq\" is negative"};
    } else {
        r.seq = static_cast<std::uint64_t>(seq->get<std::int64_t>());
    }
    return r;
}

json optional_number(const std::optional<double>& v) {
    return v && std::isfinite(*v) ? json(*v) : json(nullptr);
}

} // namespace

bool valid_partition_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxPartitionName)
        return false;
    for (const char ch : name) {
        const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

std::string to_json(const Report& r) {
    json j = {
        {"partition", r.partition},
        {"time", r.time},
        {"c", r.c},
        {"t", r.t},
        {"s", optional_number(r.s)},
        {"s_trend", optional_number(r.s_trend)},
        {"r2", optional_number(r.r2)},
        {"steal", r.steal},
        {"seq", r.seq},
    };
    return j.dump();
}

std::string_view to_string(RejectReason reason) noexcept {
    switch (reason) {
    case RejectReason::oversize:
        return "oversize";
    case RejectReason::bad_json:
        return "bad-json";
    case RejectReason::bad_schema:
        return "bad-schema";
    case RejectReason::bad_value:
        return "bad-value";
    }
    return "unknown";
}

ParseResult parse_report(std::string_view datagram) noexcept {
    try {
        if (datagram.size() > kMaxReportBytes)
            return Rejection{RejectReason::oversize,
                             "datagram longer than " + std::to_string(kMaxReportBytes) + " bytes"};
        // No exceptions from the parser, and no comments: a report is plain JSON.
        const json j = json::parse(datagram, nullptr, false, false);
        if (j.is_discarded())
            return Rejection{RejectReason::bad_json, "not valid JSON"};
        return decode(j);
    } catch (const Invalid& e) {
        return Rejection{e.reason, e.detail};
    } catch (const std::exception& e) {
        // Anything the checks above missed (a type the library refuses to
        // convert, an allocation failure) is still a rejection.
        return Rejection{RejectReason::bad_schema, e.what()};
    } catch (...) {
        return Rejection{RejectReason::bad_schema, "unexpected error"};
    }
}

void ReportCounters::count(const ParseResult& result) noexcept {
    if (const auto* rejection = std::get_if<Rejection>(&result))
        ++rejected_[static_cast<std::size_t>(rejection->reason)];
    else
        ++accepted_;
}

std::uint64_t ReportCounters::rejected() const noexcept {
    return std::accumulate(rejected_.begin(), rejected_.end(), std::uint64_t{0});
}

} // namespace plwlm
