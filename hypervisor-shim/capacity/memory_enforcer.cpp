#include "memory_enforcer.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

namespace partlink::capacity {

namespace {

// The balloon works in 4 KiB pages: a guest is at a MiB target when it is
// within a page of it.
bool at_target(std::uint64_t actual_bytes, std::uint64_t target_mib) {
    const std::uint64_t target = target_mib * kMib;
    const std::uint64_t gap = actual_bytes > target ? actual_bytes - target : target - actual_bytes;
    return gap < 4096;
}

std::uint64_t to_mib(std::uint64_t bytes) {
    return (bytes + kMib / 2) / kMib;
}

} // namespace

MemoryEnforcer::MemoryEnforcer(BalloonOpener open, MemoryEnforcerOptions options)
    : open_(std::move(open))
    , options_(std::move(options)) {
    if (!options_.sleep)
        options_.sleep = [](std::chrono::milliseconds d) {
            std::this_thread::sleep_for(d);
        };
}

AuditRecord MemoryEnforcer::enforce(const MemoryOutcome& outcome) {
    AuditRecord record;
    record.time = std::chrono::system_clock::now();
    record.from = outcome.directive.from;
    record.target = outcome.directive.target;
    record.cpu = NAN;
    record.memory_mib = outcome.directive.mib;
    record.result = audit_result(outcome.verdict);
    record.reason = outcome.reason;
    if (outcome.verdict == Verdict::refused)
        return record;

    BalloonCheck check;
    check.target_mib = outcome.target_mib;
    std::unique_ptr<Balloon> balloon;
    try {
        balloon = open_(outcome.directive.target);
        check.before_mib = to_mib(balloon->actual());
        balloon->set_target(outcome.target_mib * kMib);
    } catch (const std::exception& e) {
        check.error = e.what();
        record.result = AuditResult::failed;
        record.reason = "cannot set " + outcome.directive.target + "'s balloon: " + e.what();
        record.balloon = std::move(check);
        return record;
    }

    // The window is bounded by the clock as well as by the polls slept: a
    // QEMU slow to answer each query must not keep the guest's answer past
    // the device's timeout.
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    std::chrono::milliseconds waited{0};
    auto elapsed = [&] {
        return std::max(
            waited, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start));
    };
    try {
        while (true) {
            const std::uint64_t actual = balloon->actual();
            check.actual_mib = to_mib(actual);
            if (at_target(actual, outcome.target_mib)) {
                check.reached = true;
                break;
            }
            if (elapsed() >= options_.window)
                break;
            options_.sleep(options_.poll);
            waited += options_.poll;
        }
    } catch (const std::exception& e) {
        check.error = e.what();
    }
    check.window_ms = elapsed().count();
    if (!check.reached) {
        // The target is set; the guest's driver may still be on its way, or
        // not loaded at all.  Say where it got to, so that an operator can tell.
        const std::string where =
            check.actual_mib ? "the guest is at " + std::to_string(*check.actual_mib) + " MiB"
                             : "the balloon could not be read back (" + check.error + ")";
        record.reason += std::string(record.reason.empty() ? "" : "; ") + "target " +
                         std::to_string(check.target_mib) + " MiB set, " + where + " after " +
                         std::to_string(options_.window.count()) +
                         " ms (is virtio_balloon loaded in the guest?)";
    }
    record.balloon = std::move(check);
    return record;
}

} // namespace partlink::capacity
