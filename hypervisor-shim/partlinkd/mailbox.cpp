#include "mailbox.hpp"

#include <algorithm>
#include <cstring>
#include <endian.h>

#include "capacity/directive.hpp"

namespace partlink::daemon {

namespace {

// ABI fields are little-endian whatever the host.
std::uint32_t le32(const std::uint8_t* p) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return le32toh(v);
}

std::int64_t le64s(const std::uint8_t* p) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return static_cast<std::int64_t>(le64toh(v));
}

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

// Empty for an all-zero field (allowed only where `optional`).
std::string read_name(const char (&field)[PARTLINK_NAME_LEN], const char* what, bool optional) {
    const auto* end = std::find(field, field + PARTLINK_NAME_LEN, '\0');
    const std::string name(field, end);
    if (std::any_of(end, field + PARTLINK_NAME_LEN, [](char c) { return c != '\0'; }))
        throw MalformedRequest(std::string(what) + " has bytes after its NUL padding");
    if (name.empty()) {
        if (optional)
            return name;
        throw MalformedRequest(std::string(what) + " is empty");
    }
    if (!std::all_of(name.begin(), name.end(), name_char) || name == "." || name == "..")
        throw MalformedRequest(std::string(what) + " '" + capacity::printable(name) +
                               "' is not a partition name (A-Z a-z 0-9 . _ -)");
    return name;
}

std::optional<double> chart_value(std::int64_t raw) {
    if (raw == PARTLINK_MBOX_UNDEFINED)
        return std::nullopt;
    return static_cast<double>(raw) / PARTLINK_MBOX_MICRO;
}

bool all_zero(const std::uint8_t* p, std::size_t n) {
    return std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; });
}

} // namespace

MailboxRequest decode_request(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != sizeof(partlink_mbox_request))
        throw MalformedRequest("request of " + std::to_string(bytes.size()) + " bytes, expected " +
                               std::to_string(sizeof(partlink_mbox_request)));
    partlink_mbox_request raw;
    std::memcpy(&raw, bytes.data(), sizeof raw);
    const auto* base = bytes.data();
    const std::uint32_t op = le32(base + offsetof(partlink_mbox_request, op));
    if (le32(base + offsetof(partlink_mbox_request, flags)) != 0)
        throw MalformedRequest("flags must be zero");
    if (le32(base + offsetof(partlink_mbox_request, reserved)) != 0 ||
        !all_zero(base + offsetof(partlink_mbox_request, pad), sizeof raw.pad))
        throw MalformedRequest("reserved bytes must be zero");
    if (op < PARTLINK_MBOX_OP_SET_CPU || op > PARTLINK_MBOX_OP_REPORT)
        throw MalformedRequest("unknown op " + std::to_string(op) +
                               " (1 SET_CPU, 2 SET_MEMORY, 3 REPORT)");

    const std::string target = read_name(raw.target, "target", false);
    const std::string donor = read_name(raw.donor, "donor", true);
    if (op != PARTLINK_MBOX_OP_SET_CPU && !donor.empty())
        throw MalformedRequest("donor is for SET_CPU only");
    const std::int64_t value = le64s(base + offsetof(partlink_mbox_request, value));
    const std::size_t chart_begin = offsetof(partlink_mbox_request, velocity);
    const std::size_t chart_end = offsetof(partlink_mbox_request, reserved);

    if (op != PARTLINK_MBOX_OP_REPORT) {
        if (!all_zero(base + chart_begin, chart_end - chart_begin))
            throw MalformedRequest("the REPORT fields must be zero in a directive");
        if (op == PARTLINK_MBOX_OP_SET_CPU)
            return SetCpu{target, donor.empty() ? std::nullopt : std::optional(donor), value};
        return SetMemory{target, value};
    }

    if (value != 0)
        throw MalformedRequest("value must be zero in a REPORT");
    ChartReport report;
    report.target = target;
    report.velocity = chart_value(le64s(base + offsetof(partlink_mbox_request, velocity)));
    report.trend = chart_value(le64s(base + offsetof(partlink_mbox_request, trend)));
    report.ewma = chart_value(le64s(base + offsetof(partlink_mbox_request, ewma)));
    report.lower_limit = chart_value(le64s(base + offsetof(partlink_mbox_request, lower_limit)));
    report.upper_limit = chart_value(le64s(base + offsetof(partlink_mbox_request, upper_limit)));
    const std::int64_t cpu = le64s(base + offsetof(partlink_mbox_request, cpu));
    report.cpu = chart_value(cpu);
    report.chart_state = le32(base + offsetof(partlink_mbox_request, chart_state));
    if (report.chart_state > PARTLINK_CHART_HIGH)
        throw MalformedRequest("unknown chart_state " + std::to_string(report.chart_state));
    // On the integer: millionths are exact, their double is not.
    if (report.cpu && (cpu < 0 || cpu > PARTLINK_MBOX_MICRO))
        throw MalformedRequest("cpu must be a busy fraction in [0, 1]");
    return report;
}

std::string describe_raw_request(std::span<const std::uint8_t> bytes) {
    if (bytes.size() < offsetof(partlink_mbox_request, target) + PARTLINK_NAME_LEN)
        return "(" + std::to_string(bytes.size()) + " bytes)";
    const auto* target =
        reinterpret_cast<const char*>(bytes.data()) + offsetof(partlink_mbox_request, target);
    const auto* end = std::find(target, target + PARTLINK_NAME_LEN, '\0');
    return capacity::printable(std::string_view(target, static_cast<std::size_t>(end - target)));
}

partlink_mbox_answer make_answer(std::uint32_t result, std::int64_t value,
                                 const std::string& reason) {
    partlink_mbox_answer answer{};
    answer.result = htole32(result);
    answer.value = htole64(static_cast<std::uint64_t>(value));
    const auto n = std::min(reason.size(), sizeof answer.reason - 1);
    std::memcpy(answer.reason, reason.data(), n);
    return answer;
}

} // namespace partlink::daemon
