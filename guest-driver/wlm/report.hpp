// The monitor -> manager message: one JSON object per UDP datagram.
//
//   {"partition":"vm2","time":1732526400.5,"c":0.41,"t":0.87,"s":1.12,
//    "s_trend":1.10,"r2":0.93,"steal":0.02,"seq":17}
//
// s, s_trend and r2 are null while undefined (r2 may be left out). Whatever
// arrives on the socket is hostile: parse_report never throws and never
// trusts a value it has not range-checked.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "partlink/partlink_abi.h"

namespace plwlm {

struct Report {
    std::string partition;
    double time = 0; // sender's wall clock, seconds since the epoch
    double c = 0;
    double t = 0;
    std::optional<double> s;
    std::optional<double> s_trend;
    std::optional<double> r2;
    double steal = 0;
    std::uint64_t seq = 0;
};

// A monitor never sends more; anything longer is rejected unread.
inline constexpr std::size_t kMaxReportBytes = 1024;
// |S| beyond this is no velocity but a broken fit or a forged message.
inline constexpr double kMaxAbsVelocity = 1e6;

// Partition names: 1-16 of [A-Za-z0-9._-], as `partlink` names its guests.
// 16 is what the hypervisor mailbox carries (PARTLINK_NAME_LEN): a
// partition with a longer name could be charted but never managed.
inline constexpr std::size_t kMaxPartitionName = PARTLINK_NAME_LEN;
bool valid_partition_name(std::string_view name) noexcept;

std::string to_json(const Report& report);

enum class RejectReason { oversize, bad_json, bad_schema, bad_value };
inline constexpr std::size_t kRejectReasons = 4;
std::string_view to_string(RejectReason reason) noexcept;

struct Rejection {
    RejectReason reason;
    std::string detail;
};

using ParseResult = std::variant<Report, Rejection>;

ParseResult parse_report(std::string_view datagram) noexcept;

// What the manager received, for its log.
class ReportCounters {
public:
    void count(const ParseResult& result) noexcept;
    std::uint64_t accepted() const noexcept { return accepted_; }
    std::uint64_t rejected() const noexcept;
    std::uint64_t rejected(RejectReason reason) const noexcept {
        return rejected_[static_cast<std::size_t>(reason)];
    }

private:
    std::uint64_t accepted_ = 0;
    std::array<std::uint64_t, kRejectReasons> rejected_{};
};

} // namespace plwlm
