// What partlinkd does with a mailbox request: authorize it by the port it
// came from, decode it, and for a capacity directive evaluate, enforce,
// verify and audit it (CPU: the cgroups; memory: the guest's balloon over
// QMP); for a REPORT, record the manager's chart.  One request at a time:
// the daemon runs handle() on its worker thread, since verification watches
// cpu.stat or the balloon for up to a few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "capacity/audit_log.hpp"
#include "capacity/cgroup.hpp"
#include "capacity/chart_log.hpp"
#include "capacity/directive.hpp"
#include "capacity/enforcer.hpp"
#include "capacity/memory_enforcer.hpp"
#include "capacity/run_config.hpp"
#include "partlink/partlink_abi.h"

namespace partlink::daemon {

// Who sent a request, as the broker knows it from the port's registration:
// never from the request's bytes.
struct Sender {
    std::string name;
    bool wlm = false; // the port has PARTLINK_PORT_WLM
};

class CapacityService {
public:
    // Capacity management off (no --capacity): every request is refused,
    // saying `why`.
    explicit CapacityService(std::string why);
    // Starts from each partition's entitlement, or from the caps its
    // cgroups hold if those are a valid state of the pool (partlinkd was
    // restarted).  Opens both logs; throws Error if it cannot.  Balloons
    // open over QMP (the config's sockets) unless `open_balloon` is given.
    CapacityService(capacity::RunCapacityConfig config,
                    std::shared_ptr<capacity::CpuController> controller,
                    capacity::EnforcerOptions options = {},
                    capacity::BalloonOpener open_balloon = {},
                    capacity::MemoryEnforcerOptions memory_options = {});

    partlink_mbox_answer handle(const Sender& from, std::span<const std::uint8_t> request);

    // A partition's device registered: its cgroup gets the pool's cap again
    // (a restarted partition's group was recreated at its entitlement).
    // Returns what it did, for the log; never throws.
    std::string reapply(const std::string& partition);

    // Where problems that have no guest to go to are reported.
    void set_log(std::function<void(const std::string&)> log) { log_ = std::move(log); }

    bool enabled() const { return pool_.has_value(); }
    const capacity::CapacityPool* pool() const { return pool_ ? &*pool_ : nullptr; }
    // How the pool started, for the log.
    const std::string& start_note() const { return start_note_; }

private:
    partlink_mbox_answer set_cpu(const Sender& from, const struct SetCpu& request);
    partlink_mbox_answer set_memory(const Sender& from, const struct SetMemory& request);
    // `record` says what was asked; this fills in the rest.
    partlink_mbox_answer refuse_logged(const Sender& from, capacity::AuditRecord record,
                                       const std::string& reason);
    void audit(const capacity::AuditRecord& record);

    std::string off_reason_;
    std::optional<capacity::RunCapacityConfig> config_;
    std::shared_ptr<capacity::CpuController> controller_;
    std::optional<capacity::CapacityPool> pool_;
    std::optional<capacity::Enforcer> enforcer_;
    std::optional<capacity::MemoryEnforcer> memory_enforcer_;
    std::optional<capacity::AuditLog> audit_log_;
    std::optional<capacity::ChartLog> chart_log_;
    std::string start_note_;
    std::function<void(const std::string&)> log_;

    struct RefusalBudget {
        std::chrono::steady_clock::time_point since;
        unsigned count = 0;
        unsigned suppressed = 0;
    };
    static constexpr unsigned kAuditedRefusals = 60;
    static constexpr std::chrono::seconds kRefusalWindow{60};
    std::map<std::string, RefusalBudget, std::less<>> refusals_;
};

// micro-CPUs of the ABI for a pool amount.
std::int64_t to_micro_cpus(capacity::CpuAmount amount);

} // namespace partlink::daemon
