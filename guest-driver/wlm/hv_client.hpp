// The manager's line to the hypervisor: a capacity directive or a chart
// report out, an answer back.
//
// The real channel is /dev/partlink-hv, a misc device of partlink.ko that
// carries requests over the adapter's mailbox (docs/spec.md, section 15).
// mailbox.hpp encodes and decodes the mailbox's bytes; this file is the
// interface and the device's open and ioctl.
#pragma once

#include <array>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "control_chart.hpp"
#include "exit_status.hpp"
#include "partlink/partlink_abi.h"
#include "unique_fd.hpp"

namespace plwlm {

inline constexpr std::string_view kDevicePath = "/dev/partlink-hv";
// A cap beyond this is no directive but a typo or a forgery.
inline constexpr double kMaxDirectiveCpus = 1024;
// Likewise a memory size beyond this (16 TiB), in MiB.
inline constexpr std::int64_t kMaxDirectiveMib = std::int64_t{1} << 24;

struct Directive {
    std::string target; // partition whose cap is set
    double cpu = 0;     // its new cap, in CPUs
    // Where the difference comes from. Empty: the hypervisor keeps the pool
    // total constant by its own policy (as `plwlm request` does).
    std::optional<std::string> donor;
};

// A partition's memory (its balloon target), `plwlm request --memory`.
struct MemoryDirective {
    std::string target;
    std::int64_t mib = 0;
};

// The manager's chart of one partition, for `partlink status` and `partlink
// wlm chart` on the host. An empty field is one the manager has no value for.
struct ChartReport {
    std::string target;
    std::optional<double> velocity;    // S
    std::optional<double> trend;       // S's trend
    std::optional<double> ewma;        // the chart's EWMA of S - trend
    std::optional<double> lower_limit; // its control limits
    std::optional<double> upper_limit;
    std::optional<double> cpu; // C, the busy fraction
    ChartState state = ChartState::warming_up;
};

// Throw UsageError naming the bad field.
void validate(const Directive& directive);
void validate(const MemoryDirective& directive);

// The hypervisor's results (spec section 15), and dry-run.
enum class Outcome { applied, clamped, refused, failed, unavailable, dry_run };
std::string_view to_string(Outcome outcome) noexcept;

struct Answer {
    Outcome outcome = Outcome::refused;
    std::string reason; // why clamped, refused or failed; may be empty otherwise
    // The target's setting now: CPUs for a directive (dry run: the cap asked
    // for), MiB for a memory directive, 0 for a report.
    double value = 0;
};

// applied, clamped and dry-run did what was asked or the nearest allowed.
bool accepted(const Answer& answer) noexcept;

class HypervisorChannel {
public:
    virtual ~HypervisorChannel() = default;
    // Each sends one request and waits for the hypervisor's answer. They throw
    // plwlm::Error when the channel itself fails, UsageError when the request
    // cannot be expressed (a bad value, a name the mailbox cannot carry).
    virtual Answer send(const Directive& directive) = 0;
    // A channel that carries no memory directives or reports throws Error
    // with kExitUnavailable.
    virtual Answer send_memory(const MemoryDirective& directive);
    virtual Answer report(const ChartReport& report);
    virtual std::string_view name() const noexcept = 0;
};

// Decides nothing and asks no one: logs the directive, answers "dry-run".
class DryRunChannel final : public HypervisorChannel {
public:
    // `log` may be null: the caller reports the answer itself.
    explicit DryRunChannel(std::ostream* log = nullptr);
    Answer send(const Directive& directive) override;
    Answer send_memory(const MemoryDirective& directive) override;
    // Reports are not logged: there is one per partition and interval.
    Answer report(const ChartReport& report) override;
    std::string_view name() const noexcept override { return "dry-run"; }

private:
    std::ostream* log_;
};

// The device. Opening it when partlink.ko (with its mailbox) is not loaded
// fails with kExitUnavailable and says so. An exchange that the driver
// cannot complete (no answer in time, the adapter gone, a device that is not
// a mailbox) is Error with kExitUnavailable; an answer that breaks the
// protocol is Error with kExitFailure.
class DeviceChannel final : public HypervisorChannel {
public:
    explicit DeviceChannel(std::string path = std::string(kDevicePath));
    Answer send(const Directive& directive) override;
    Answer send_memory(const MemoryDirective& directive) override;
    Answer report(const ChartReport& report) override;
    // 128 bytes as they are, for testing the hypervisor's checks; the
    // answer is read as that of the op the bytes name (SET_CPU if none).
    Answer send_raw(const std::array<std::uint8_t, PARTLINK_MBOX_REQUEST_SIZE>& request);
    Answer send_unchecked(const Directive& directive);
    Answer send_unchecked(const MemoryDirective& directive);
    std::string_view name() const noexcept override { return "device"; }
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    partlink::UniqueFd fd_;
};

} // namespace plwlm
