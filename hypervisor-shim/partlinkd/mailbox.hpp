// The hypervisor mailbox as partlinkd reads it (ABI section 15): the 128
// bytes a guest wrote, decoded into one request after every field was
// checked, and answers encoded back.  Pure: no I/O, for unit tests.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

#include "error.hpp"
#include "partlink/partlink_abi.h"

namespace partlink::daemon {

struct SetCpu {
    std::string target;
    std::optional<std::string> donor;
    std::int64_t micro_cpus = 0; // as asked: may be zero, negative or absurd
};

struct SetMemory {
    std::string target;
    std::int64_t mib = 0; // as asked
};

struct ChartReport {
    std::string target;
    std::optional<double> velocity, trend, ewma, lower_limit, upper_limit, cpu;
    std::uint32_t chart_state = PARTLINK_CHART_WARMING_UP;
};

using MailboxRequest = std::variant<SetCpu, SetMemory, ChartReport>;

// A request that is not one: the reason is what the guest is told.
class MalformedRequest : public Error {
public:
    using Error::Error;
};

// Checks op, flags, reserved and pad bytes, both names (1..16 of
// [A-Za-z0-9._-], NUL-padded with nothing after the first NUL) and the
// REPORT fields.  Values of SET_CPU and SET_MEMORY are left to the policy,
// which refuses them with the numbers in its reason.  Throws
// MalformedRequest.
MailboxRequest decode_request(std::span<const std::uint8_t> bytes);

// The target field of any 128 bytes, printable, for the audit log of a
// malformed request.
std::string describe_raw_request(std::span<const std::uint8_t> bytes);

// reason is cut to fit, always NUL-terminated.
partlink_mbox_answer make_answer(std::uint32_t result, std::int64_t value,
                                 const std::string& reason);

} // namespace partlink::daemon
