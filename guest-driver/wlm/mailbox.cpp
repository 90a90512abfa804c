#include "mailbox.hpp"

#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>

#include "report.hpp"

namespace plwlm {
namespace {

using Req = partlink_mbox_request;
using Ans = partlink_mbox_answer;

// The layout of spec section 15, checked against the ABI header.
static_assert(sizeof(Req) == PARTLINK_MBOX_REQUEST_SIZE);
static_assert(sizeof(Ans) == PARTLINK_MBOX_ANSWER_SIZE);
static_assert(offsetof(Req, op) == 0 && offsetof(Req, flags) == 4);
static_assert(offsetof(Req, target) == 8 && offsetof(Req, donor) == 24);
static_assert(offsetof(Req, value) == 40 && offsetof(Req, velocity) == 48);
static_assert(offsetof(Req, trend) == 56 && offsetof(Req, ewma) == 64);
static_assert(offsetof(Req, lower_limit) == 72 && offsetof(Req, upper_limit) == 80);
static_assert(offsetof(Req, cpu) == 88 && offsetof(Req, chart_state) == 96);
static_assert(offsetof(Req, reserved) == 100 && offsetof(Req, pad) == 104);
static_assert(sizeof(Req::target) == kMailboxNameLen && sizeof(Req::pad) == 24);
static_assert(offsetof(Ans, result) == 0 && offsetof(Ans, reserved) == 4);
static_assert(offsetof(Ans, value) == 8 && offsetof(Ans, reason) == 16);
static_assert(sizeof(Ans::reason) == kMailboxReasonLen);

constexpr double kMicro = PARTLINK_MBOX_MICRO;

template <std::size_t N>
void put_le32(std::array<std::uint8_t, N>& b, std::size_t off, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i)
        b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

template <std::size_t N>
void put_le64(std::array<std::uint8_t, N>& b, std::size_t off, std::int64_t value) {
    const auto v = static_cast<std::uint64_t>(value);
    for (std::size_t i = 0; i < 8; ++i)
        b[off + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

template <std::size_t N>
std::uint32_t get_le32(const std::array<std::uint8_t, N>& b, std::size_t off) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(b[off + i]) << (8 * i);
    return v;
}

template <std::size_t N>
std::int64_t get_le64(const std::array<std::uint8_t, N>& b, std::size_t off) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i)
        v |= static_cast<std::uint64_t>(b[off + i]) << (8 * i);
    return static_cast<std::int64_t>(v);
}

// `what` names the field in the message: "partition", "donor".
void put_name(MailboxRequest& b, std::size_t off, const std::string& name, const char* what) {
    if (name.size() > kMailboxNameLen)
        throw UsageError(std::string(what) + " '" + name + "' is " + std::to_string(name.size()) +
                         " bytes long; the hypervisor mailbox " + "carries names of at most " +
                         std::to_string(kMailboxNameLen));
    if (!valid_partition_name(name))
        throw UsageError(std::string(what) + " '" + name +
                         "' is not a valid partition name (A-Z a-z 0-9 . _ -)");
    for (std::size_t i = 0; i < name.size(); ++i)
        b[off + i] = static_cast<std::uint8_t>(name[i]);
}

MailboxRequest header(MailboxOp op, const std::string& target) {
    MailboxRequest b{};
    put_le32(b, offsetof(Req, op), static_cast<std::uint32_t>(op));
    put_name(b, offsetof(Req, target), target, "partition");
    return b;
}

std::string bounded_name(const MailboxRequest& b, std::size_t off) {
    std::string name;
    for (std::size_t i = 0; i < kMailboxNameLen && b[off + i] != 0; ++i)
        name += static_cast<char>(b[off + i]);
    return name;
}

std::string format_cpus(double cpus) {
    std::ostringstream s;
    s << cpus;
    return s.str();
}

} // namespace

std::int64_t cpus_to_micro(double cpus) noexcept {
    return std::llround(cpus * kMicro);
}

std::int64_t chart_micro(const std::optional<double>& value) noexcept {
    // 2^63 is exactly representable; anything at or beyond it does not fit,
    // and INT64_MIN itself means "undefined".
    constexpr double kLimit = 9223372036854775808.0;
    if (!value || !std::isfinite(*value))
        return PARTLINK_MBOX_UNDEFINED;
    const double micro = std::round(*value * kMicro);
    if (!(micro > -kLimit && micro < kLimit))
        return PARTLINK_MBOX_UNDEFINED;
    return static_cast<std::int64_t>(micro);
}

std::uint32_t chart_code(ChartState state) noexcept {
    switch (state) {
    case ChartState::warming_up:
        return PARTLINK_CHART_WARMING_UP;
    case ChartState::in_control:
        return PARTLINK_CHART_IN_CONTROL;
    case ChartState::out_of_control_low:
        return PARTLINK_CHART_LOW;
    case ChartState::out_of_control_high:
        return PARTLINK_CHART_HIGH;
    }
    return PARTLINK_CHART_WARMING_UP;
}

MailboxRequest encode(const Directive& d) {
    validate(d);
    auto b = header(MailboxOp::set_cpu, d.target);
    if (d.donor)
        put_name(b, offsetof(Req, donor), *d.donor, "donor");
    const auto micro = cpus_to_micro(d.cpu);
    if (micro <= 0)
        throw UsageError("directive: cpu " + format_cpus(d.cpu) +
                         " is below the mailbox's resolution of a millionth of a CPU");
    put_le64(b, offsetof(Req, value), micro);
    return b;
}

MailboxRequest encode_unchecked(const Directive& d) {
    auto b = header(MailboxOp::set_cpu, d.target);
    if (d.donor)
        put_name(b, offsetof(Req, donor), *d.donor, "donor");
    if (!std::isfinite(d.cpu) || std::fabs(d.cpu) > 1e12)
        throw UsageError("directive: cpu must be a finite number of CPUs");
    put_le64(b, offsetof(Req, value), static_cast<std::int64_t>(std::llround(d.cpu * 1e6)));
    return b;
}

MailboxRequest encode(const MemoryDirective& d) {
    validate(d);
    auto b = header(MailboxOp::set_memory, d.target);
    put_le64(b, offsetof(Req, value), d.mib);
    return b;
}

MailboxRequest encode_unchecked(const MemoryDirective& d) {
    auto b = header(MailboxOp::set_memory, d.target);
    put_le64(b, offsetof(Req, value), d.mib);
    return b;
}

MailboxRequest encode(const ChartReport& r) {
    auto b = header(MailboxOp::report, r.target);
    put_le64(b, offsetof(Req, velocity), chart_micro(r.velocity));
    put_le64(b, offsetof(Req, trend), chart_micro(r.trend));
    put_le64(b, offsetof(Req, ewma), chart_micro(r.ewma));
    put_le64(b, offsetof(Req, lower_limit), chart_micro(r.lower_limit));
    put_le64(b, offsetof(Req, upper_limit), chart_micro(r.upper_limit));
    put_le64(b, offsetof(Req, cpu), chart_micro(r.cpu));
    put_le32(b, offsetof(Req, chart_state), chart_code(r.state));
    return b;
}

Answer decode(const MailboxAnswer& b, MailboxOp op) {
    Answer a;
    const auto result = get_le32(b, offsetof(Ans, result));
    switch (result) {
    case PARTLINK_MBOX_APPLIED:
        a.outcome = Outcome::applied;
        break;
    case PARTLINK_MBOX_CLAMPED:
        a.outcome = Outcome::clamped;
        break;
    case PARTLINK_MBOX_REFUSED:
        a.outcome = Outcome::refused;
        break;
    case PARTLINK_MBOX_FAILED:
        a.outcome = Outcome::failed;
        break;
    case PARTLINK_MBOX_UNAVAILABLE:
        a.outcome = Outcome::unavailable;
        break;
    default:
        throw Error("malformed answer from the hypervisor: unknown result " +
                    std::to_string(result));
    }

    for (std::size_t i = 0; i < kMailboxReasonLen; ++i) {
        const auto ch = b[offsetof(Ans, reason) + i];
        if (ch == 0)
            break;
        a.reason += ch >= 0x20 && ch < 0x7f ? static_cast<char>(ch) : '?';
    }

    const auto value = get_le64(b, offsetof(Ans, value));
    const bool set = a.outcome == Outcome::applied || a.outcome == Outcome::clamped;
    switch (op) {
    case MailboxOp::set_cpu:
        a.value = static_cast<double>(value) / kMicro;
        if (set && (value <= 0 || a.value > kMaxDirectiveCpus))
            throw Error(
                "malformed answer from the hypervisor: " + std::string(to_string(a.outcome)) +
                " a CPU cap of " + std::to_string(value) + " millionths");
        break;
    case MailboxOp::set_memory:
        a.value = static_cast<double>(value);
        if (set && (value <= 0 || value > kMaxDirectiveMib))
            throw Error(
                "malformed answer from the hypervisor: " + std::string(to_string(a.outcome)) +
                " a memory size of " + std::to_string(value) + " MiB");
        break;
    case MailboxOp::report:
        a.value = 0;
        break;
    }
    return a;
}

RequestFields decode_request(const MailboxRequest& b) {
    RequestFields f;
    f.op = get_le32(b, offsetof(Req, op));
    f.flags = get_le32(b, offsetof(Req, flags));
    f.target = bounded_name(b, offsetof(Req, target));
    f.donor = bounded_name(b, offsetof(Req, donor));
    f.value = get_le64(b, offsetof(Req, value));
    f.velocity = get_le64(b, offsetof(Req, velocity));
    f.trend = get_le64(b, offsetof(Req, trend));
    f.ewma = get_le64(b, offsetof(Req, ewma));
    f.lower_limit = get_le64(b, offsetof(Req, lower_limit));
    f.upper_limit = get_le64(b, offsetof(Req, upper_limit));
    f.cpu = get_le64(b, offsetof(Req, cpu));
    f.chart_state = get_le32(b, offsetof(Req, chart_state));
    f.reserved = get_le32(b, offsetof(Req, reserved));
    for (std::size_t i = 0; i < sizeof(Req::pad); ++i)
        f.pad_zero = f.pad_zero && b[offsetof(Req, pad) + i] == 0;
    return f;
}

MailboxAnswer encode_answer(std::uint32_t result, std::int64_t value, std::string_view reason) {
    MailboxAnswer b{};
    put_le32(b, offsetof(Ans, result), result);
    put_le64(b, offsetof(Ans, value), value);
    for (std::size_t i = 0; i < reason.size() && i < kMailboxReasonLen; ++i)
        b[offsetof(Ans, reason) + i] = static_cast<std::uint8_t>(reason[i]);
    return b;
}

} // namespace plwlm
