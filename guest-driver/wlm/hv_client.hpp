// The manager's line to the hypervisor: a capacity directive out, an answer
// back.
//
// The real channel is /dev/partlink-hv, a misc device of partlink.ko that
// carries directives over the adapter's mailbox (issue 3). Its wire format
// belongs to that issue; this file only fixes the interface and what happens
// when the device is not there.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include "exit_status.hpp"
#include "unique_fd.hpp"

namespace plwlm {

inline constexpr std::string_view kDevicePath = "/dev/partlink-hv";
// A cap beyond this is no directive but a typo or a forgery.
inline constexpr double kMaxDirectiveCpus = 1024;

struct Directive {
    std::string target; // partition whose cap is set
    double cpu = 0;     // its new cap, in CPUs
    // Where the difference comes from. Empty: the hypervisor keeps the pool
    // total constant by its own policy (as `plwlm request` does).
    std::optional<std::string> donor;
};

// Throws UsageError naming the bad field.
void validate(const Directive& directive);

enum class Outcome { applied, clamped, refused, dry_run };
std::string_view to_string(Outcome outcome) noexcept;

struct Answer {
    Outcome outcome = Outcome::refused;
    std::string reason; // why clamped or refused; may be empty otherwise
    double value = 0;   // the target's cap now (or, dry run, the one asked for)
};

// applied, clamped and dry-run did what was asked or the nearest allowed.
bool accepted(const Answer& answer) noexcept;

class HypervisorChannel {
public:
    virtual ~HypervisorChannel() = default;
    // Sends one directive and waits for the hypervisor's answer. Throws
    // plwlm::Error when the channel itself fails.
    virtual Answer send(const Directive& directive) = 0;
    virtual std::string_view name() const noexcept = 0;
};

// Decides nothing and asks no one: logs the directive, answers "dry-run".
class DryRunChannel final : public HypervisorChannel {
public:
    // `log` may be null: the caller reports the answer itself.
    explicit DryRunChannel(std::ostream* log = nullptr);
    Answer send(const Directive& directive) override;
    std::string_view name() const noexcept override { return "dry-run"; }

private:
    std::ostream* log_;
};

// The device. Opening it when partlink.ko (with its mailbox) is not loaded
// fails with kExitUnavailable and says so.
class DeviceChannel final : public HypervisorChannel {
public:
    explicit DeviceChannel(std::string path = std::string(kDevicePath));
    Answer send(const Directive& directive) override;
    std::string_view name() const noexcept override { return "device"; }

private:
    std::string path_;
    partlink::UniqueFd fd_;
};

} // namespace plwlm
