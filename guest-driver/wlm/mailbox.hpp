// The bytes of the hypervisor mailbox (docs/spec.md, section 15): requests
// encoded into struct partlink_mbox_request, answers decoded from struct
// partlink_mbox_answer. Pure: no I/O, no clock.
//
// Both structures are little-endian whatever the host's byte order: fields
// are written and read byte by byte at the ABI header's offsets, never by
// storing host integers into the structs.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "hv_client.hpp"
#include "partlink/partlink_abi.h"

namespace plwlm {

// Partition names in the mailbox: NUL-padded, not terminated, at most this.
inline constexpr std::size_t kMailboxNameLen = PARTLINK_NAME_LEN;
// The answer's reason field, in bytes.
inline constexpr std::size_t kMailboxReasonLen = 96;

using MailboxRequest = std::array<std::uint8_t, PARTLINK_MBOX_REQUEST_SIZE>;
using MailboxAnswer = std::array<std::uint8_t, PARTLINK_MBOX_ANSWER_SIZE>;

enum class MailboxOp : std::uint32_t {
    set_cpu = PARTLINK_MBOX_OP_SET_CPU,
    set_memory = PARTLINK_MBOX_OP_SET_MEMORY,
    report = PARTLINK_MBOX_OP_REPORT,
};

// Each validates first and throws UsageError naming what the mailbox cannot
// carry: a bad value, or a partition name longer than kMailboxNameLen.
MailboxRequest encode(const Directive& directive);
MailboxRequest encode(const MemoryDirective& directive);
MailboxRequest encode(const ChartReport& report);
// Without the checks, so that a developer can see what the hypervisor does
// with a cap that is zero, negative or absurd (`plwlm request --no-check`).
// Names must still fit.
MailboxRequest encode_unchecked(const Directive& directive);
MailboxRequest encode_unchecked(const MemoryDirective& directive);

// CPUs in millionths, rounded to the nearest.
std::int64_t cpus_to_micro(double cpus) noexcept;
// A chart value in millionths, or PARTLINK_MBOX_UNDEFINED when absent, not
// finite or beyond what 64 bits hold.
std::int64_t chart_micro(const std::optional<double>& value) noexcept;
std::uint32_t chart_code(ChartState state) noexcept;

// Decodes the answer to a request of `op`: the value back in CPUs (SET_CPU)
// or MiB (SET_MEMORY); the reason up to its NUL or its 96th byte, with bytes
// other than printable ASCII shown as '?'. An answer that breaks the
// protocol (an unknown result; an applied or clamped setting that is
// negative or absurd) is Error with kExitFailure.
Answer decode(const MailboxAnswer& answer, MailboxOp op);

// Every field of an encoded request, read back (for tests and diagnostics).
struct RequestFields {
    std::uint32_t op = 0;
    std::uint32_t flags = 0;
    std::string target; // up to the first NUL
    std::string donor;
    std::int64_t value = 0;
    std::int64_t velocity = 0;
    std::int64_t trend = 0;
    std::int64_t ewma = 0;
    std::int64_t lower_limit = 0;
    std::int64_t upper_limit = 0;
    std::int64_t cpu = 0;
    std::uint32_t chart_state = 0;
    std::uint32_t reserved = 0;
    bool pad_zero = true; // the 24 pad bytes are all zero
};
RequestFields decode_request(const MailboxRequest& request);

// An answer as a device would write it; a reason longer than the field is
// cut to 96 bytes without a NUL (for tests and fakes).
MailboxAnswer encode_answer(std::uint32_t result, std::int64_t value, std::string_view reason);

} // namespace plwlm
