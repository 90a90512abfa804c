// Memory directives: validation and clamping (pure), and their enforcement
// on a fake balloon that follows its target a step at a time, or never.
#include <cmath>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "memory_directive.hpp"
#include "memory_enforcer.hpp"

namespace partlink::capacity {
namespace {

using ::testing::HasSubstr;

// vm1 512 MiB with the default range [256, 512]; vm2 [128, 384] of 512.
Policy two_partitions() {
    Policy policy;
    policy.host_cpus = 2;
    policy.privileged = "vm1";
    policy.partitions = {{"vm1", CpuAmount::from_cpus(1), CpuAmount::from_cpus(0.1),
                          CpuAmount::from_cpus(2), 100, std::nullopt},
                         {"vm2", CpuAmount::from_cpus(1), CpuAmount::from_cpus(0.1),
                          CpuAmount::from_cpus(2), 100, MemoryTarget{128, 384}}};
    return policy;
}

const BootMemory kBoot = {{"vm1", 512}, {"vm2", 512}};

MemoryOutcome evaluate(const std::string& target, std::int64_t mib,
                       const BootMemory& boot = kBoot) {
    return evaluate_memory(two_partitions(), boot, {"vm1", target, mib});
}

TEST(MemoryDirective, WithinTheRangeIsAppliedAsAsked) {
    const auto outcome = evaluate("vm2", 200);
    EXPECT_EQ(outcome.verdict, Verdict::applied);
    EXPECT_EQ(outcome.target_mib, 200u);
    EXPECT_EQ(outcome.reason, "");
}

TEST(MemoryDirective, ClampedToThePolicyRangeOrTheDefaultOne) {
    auto outcome = evaluate("vm2", 64);
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.target_mib, 128u);
    EXPECT_EQ(outcome.reason, "64 MiB is below vm2's minimum 128 MiB");
    outcome = evaluate("vm2", 500);
    EXPECT_EQ(outcome.target_mib, 384u);
    EXPECT_EQ(outcome.reason, "500 MiB is above vm2's maximum 384 MiB");
    // vm1 has no memory_mib: half its boot RAM up to all of it.
    outcome = evaluate("vm1", 100);
    EXPECT_EQ(outcome.target_mib, 256u);
    outcome = evaluate("vm1", 4096);
    EXPECT_EQ(outcome.target_mib, 512u);
    EXPECT_EQ(outcome.reason, "4096 MiB is above vm1's maximum 512 MiB (the RAM it booted with)");
}

TEST(MemoryDirective, BadDirectivesAreRefusedWithTheReason) {
    struct Case {
        std::string target;
        std::int64_t mib;
        std::string reason;
    };
    for (const auto& c : std::vector<Case>{
             {"vm3", 256, "unknown partition 'vm3'"},
             {"vm2", 0, "memory must be positive, not 0 MiB"},
             {"vm2", -1, "memory must be positive, not -1 MiB"},
             {"vm2", INT64_MIN, "memory must be positive"},
             {"vm2", kAbsurdMib + 1, "MiB is absurd"},
             {"vm2", INT64_MAX, "MiB is absurd"},
         }) {
        const auto outcome = evaluate(c.target, c.mib);
        EXPECT_EQ(outcome.verdict, Verdict::refused) << c.mib;
        EXPECT_THAT(outcome.reason, HasSubstr(c.reason)) << c.mib;
    }
    // Only the policy's privileged partition, whatever the port said.
    auto from_vm2 = evaluate_memory(two_partitions(), kBoot, {"vm2", "vm2", 256});
    EXPECT_EQ(from_vm2.verdict, Verdict::refused);
    EXPECT_THAT(from_vm2.reason, HasSubstr("vm2 is not WLM-privileged: only vm1"));
    // A partition partlinkd has no balloon for.
    const auto outcome = evaluate("vm2", 256, {{"vm1", 512}});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_THAT(outcome.reason, HasSubstr("no balloon control for vm2"));
}

// A guest whose RAM moves `step` bytes toward the target per read; a step of
// 0 never moves (no balloon driver).  `fail` makes every call throw.
class FakeBalloon : public Balloon {
public:
    struct State {
        std::uint64_t actual = 512 * kMib;
        std::uint64_t target = 512 * kMib;
        std::uint64_t step = 64 * kMib;
        bool fail_reads = false;
        std::chrono::milliseconds latency{0}; // of each read, on the real clock
        int reads = 0;
    };
    explicit FakeBalloon(State& state)
        : state_(state) {}
    void set_target(std::uint64_t bytes) override { state_.target = bytes; }
    std::uint64_t actual() override {
        if (state_.fail_reads && state_.reads > 0)
            throw Error("QMP timed out waiting for a reply");
        std::this_thread::sleep_for(state_.latency);
        const std::uint64_t now = state_.actual;
        ++state_.reads;
        if (state_.actual > state_.target)
            state_.actual -= std::min(state_.step, state_.actual - state_.target);
        else
            state_.actual += std::min(state_.step, state_.target - state_.actual);
        return now;
    }

private:
    State& state_;
};

struct Harness {
    FakeBalloon::State state;
    std::vector<std::string> opened;
    bool refuse_open = false;
    MemoryEnforcer enforcer{[this](const std::string& partition) -> std::unique_ptr<Balloon> {
                                opened.push_back(partition);
                                if (refuse_open)
                                    throw Error("cannot connect to QMP socket /run/vm2.hv.qmp");
                                return std::make_unique<FakeBalloon>(state);
                            },
                            {std::chrono::milliseconds(1000), std::chrono::milliseconds(100),
                             [](std::chrono::milliseconds) {
                             }}};
};

TEST(MemoryEnforcer, SetsTheTargetAndWatchesTheGuestReachIt) {
    Harness h;
    const auto record = h.enforcer.enforce(evaluate("vm2", 256));
    EXPECT_EQ(h.opened, std::vector<std::string>{"vm2"});
    EXPECT_EQ(h.state.target, 256 * kMib);
    EXPECT_EQ(record.result, AuditResult::applied);
    EXPECT_EQ(record.memory_mib, 256);
    EXPECT_TRUE(std::isnan(record.cpu));
    ASSERT_TRUE(record.balloon);
    EXPECT_EQ(record.balloon->before_mib, 512u);
    EXPECT_EQ(record.balloon->actual_mib, 256u);
    EXPECT_TRUE(record.balloon->reached);
    EXPECT_EQ(record.balloon->window_ms, 400); // 448, 384, 320, 256 after 4 polls
    EXPECT_EQ(record.reason, "");
}

TEST(MemoryEnforcer, AClampKeepsItsReason) {
    Harness h;
    const auto record = h.enforcer.enforce(evaluate("vm2", 4096));
    EXPECT_EQ(record.result, AuditResult::clamped);
    EXPECT_EQ(h.state.target, 384 * kMib);
    EXPECT_EQ(record.reason, "4096 MiB is above vm2's maximum 384 MiB");
    EXPECT_TRUE(record.balloon->reached);
}

TEST(MemoryEnforcer, AGuestThatDoesNotFollowIsReportedNotFailed) {
    Harness h;
    h.state.step = 0;
    const auto record = h.enforcer.enforce(evaluate("vm2", 256));
    EXPECT_EQ(record.result, AuditResult::applied);
    EXPECT_FALSE(record.balloon->reached);
    EXPECT_EQ(record.balloon->actual_mib, 512u);
    EXPECT_EQ(record.balloon->window_ms, 1000);
    EXPECT_THAT(record.reason, HasSubstr("target 256 MiB set, the guest is at 512 MiB after 1000 "
                                         "ms (is virtio_balloon loaded in the guest?)"));
}

TEST(MemoryEnforcer, ASlowQemuDoesNotStretchTheWindow) {
    Harness h;
    h.state.step = 0;
    h.state.latency = std::chrono::milliseconds(200);
    const auto record = h.enforcer.enforce(evaluate("vm2", 256));
    // A window of 1000 ms at 200 ms a read is 5 or 6 reads, not the 11 that
    // the polls alone would allow (2.2 s).
    EXPECT_LE(h.state.reads, 7);
    EXPECT_GE(record.balloon->window_ms, 1000);
    EXPECT_FALSE(record.balloon->reached);
}

TEST(MemoryEnforcer, AnUnreachableBalloonFails) {
    Harness h;
    h.refuse_open = true;
    const auto record = h.enforcer.enforce(evaluate("vm2", 256));
    EXPECT_EQ(record.result, AuditResult::failed);
    EXPECT_THAT(record.reason, HasSubstr("cannot set vm2's balloon: cannot connect to QMP"));
    ASSERT_TRUE(record.balloon);
    EXPECT_FALSE(record.balloon->before_mib);
    EXPECT_EQ(record.balloon->error, "cannot connect to QMP socket /run/vm2.hv.qmp");
}

TEST(MemoryEnforcer, ALostReadBackIsSaid) {
    Harness h;
    h.state.fail_reads = true;
    const auto record = h.enforcer.enforce(evaluate("vm2", 256));
    EXPECT_EQ(record.result, AuditResult::applied); // the target is set
    EXPECT_EQ(h.state.target, 256 * kMib);
    EXPECT_FALSE(record.balloon->reached);
    EXPECT_THAT(record.reason, HasSubstr("could not be read back (QMP timed out"));
}

TEST(MemoryEnforcer, RefusedOutcomesTouchNoBalloon) {
    Harness h;
    const auto record = h.enforcer.enforce(evaluate("vm2", -1));
    EXPECT_EQ(record.result, AuditResult::refused);
    EXPECT_TRUE(h.opened.empty());
    EXPECT_FALSE(record.balloon);
    EXPECT_EQ(record.memory_mib, -1);
}

} // namespace
} // namespace partlink::capacity
