// Capacity directives: authorization, validation, clamping, and the shift
// that keeps the pool total constant.
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "directive.hpp"

namespace partlink::capacity {
namespace {

CpuAmount cpus(double value) {
    return CpuAmount::from_cpus(value);
}

// vm1 (privileged) 0.5 [0.1, 1], vm2 0.75 [0.25, 2], vm3 0.75 [0.5, 1.5] on 2 CPUs.
Policy three_partitions() {
    Policy policy;
    policy.host_cpus = 2;
    policy.privileged = "vm1";
    policy.partitions = {{"vm1", cpus(0.5), cpus(0.1), cpus(1), 100, {}},
                         {"vm2", cpus(0.75), cpus(0.25), cpus(2), 100, {}},
                         {"vm3", cpus(0.75), cpus(0.5), cpus(1.5), 100, {}}};
    return policy;
}

const CapChange* change_of(const DirectiveOutcome& outcome, const std::string& partition) {
    for (const auto& change : outcome.changes)
        if (change.partition == partition)
            return &change;
    return nullptr;
}

CpuAmount sum_after(const CapacityPool& pool, const DirectiveOutcome& outcome) {
    auto caps = pool.caps();
    for (const auto& change : outcome.changes)
        caps[change.partition] = change.after;
    CpuAmount total;
    for (const auto& [name, cap] : caps)
        total += cap;
    return total;
}

TEST(Directive, AppliedShiftTakesFromDonorsInProportionToSurplus) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm2", 1.0});
    EXPECT_EQ(outcome.verdict, Verdict::applied) << outcome.reason;
    EXPECT_EQ(outcome.granted, cpus(1.0));
    ASSERT_EQ(outcome.changes.size(), 3u);
    EXPECT_EQ(outcome.changes[0], (CapChange{"vm2", cpus(0.75), cpus(1.0)}));
    // Surpluses above min: vm1 0.4, vm3 0.25; 0.25 CPU split 0.4 : 0.25.
    EXPECT_EQ(change_of(outcome, "vm1")->after.units, 50'000 - 15'385);
    EXPECT_EQ(change_of(outcome, "vm3")->after.units, 75'000 - 9'615);
    EXPECT_EQ(sum_after(pool, outcome), pool.total());
    EXPECT_NE(outcome.reason.find("vm2 0.75 CPU -> 1 CPU, taken from vm1"), std::string::npos)
        << outcome.reason;
}

TEST(Directive, CommitMakesTheOutcomeTheState) {
    CapacityPool pool(three_partitions());
    const auto total = pool.total();
    const auto outcome = pool.evaluate({"vm1", "vm2", 1.2});
    pool.commit(outcome);
    EXPECT_EQ(pool.cap("vm2"), cpus(1.2));
    EXPECT_EQ(pool.total(), total);
    // The same outcome again is stale.
    EXPECT_THROW(pool.commit(outcome), std::logic_error);
}

TEST(Directive, DecreaseGivesBackInProportionToRoom) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm3", 0.5});
    EXPECT_EQ(outcome.verdict, Verdict::applied) << outcome.reason;
    // Room below max: vm1 0.5, vm2 1.25; 0.25 CPU split 0.5 : 1.25.
    EXPECT_EQ(change_of(outcome, "vm1")->after.units, 50'000 + 7'143);
    EXPECT_EQ(change_of(outcome, "vm2")->after.units, 75'000 + 17'857);
    EXPECT_EQ(sum_after(pool, outcome), pool.total());
}

TEST(Directive, NonPrivilegedIsRefused) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm2", "vm2", 1.5});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_EQ(outcome.reason,
              "partition vm2 is not WLM-privileged: only vm1 may issue capacity directives");
    // The target is listed, unchanged, so the log shows where it stood.
    ASSERT_EQ(outcome.changes.size(), 1u);
    EXPECT_EQ(outcome.changes[0], (CapChange{"vm2", cpus(0.75), cpus(0.75)}));
}

TEST(Directive, UnknownSourceIsRefused) {
    CapacityPool pool(three_partitions());
    EXPECT_EQ(pool.evaluate({"", "vm2", 1}).verdict, Verdict::refused);
    EXPECT_EQ(pool.evaluate({"host", "vm2", 1}).verdict, Verdict::refused);
}

TEST(Directive, UnknownTargetIsRefused) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm9", 1});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_EQ(outcome.reason, "unknown target partition 'vm9' (known: vm1, vm2, vm3)");
    EXPECT_TRUE(outcome.changes.empty());
    EXPECT_EQ(pool.evaluate({"vm1", "", 1}).verdict, Verdict::refused);
}

TEST(Directive, GarbageBytesInTheTargetAreRefusedAndPrintable) {
    CapacityPool pool(three_partitions());
    const std::string garbage("vm\x02\xff\n\0x", 7);
    const auto outcome = pool.evaluate({"vm1", garbage, 1});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_NE(outcome.reason.find("'vm\\x02\\xff\\x0a\\x00x'"), std::string::npos)
        << outcome.reason;
    EXPECT_EQ(printable(std::string(100, 'a')).size(), 67u);
}

TEST(Directive, NonFiniteNegativeZeroAndAbsurdValuesAreRefused) {
    CapacityPool pool(three_partitions());
    const double values[] = {std::nan(""),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             -0.5,
                             0.0,
                             -0.0,
                             1025,
                             1e300,
                             std::numeric_limits<double>::max()};
    for (const double value : values) {
        const auto outcome = pool.evaluate({"vm1", "vm2", value});
        EXPECT_EQ(outcome.verdict, Verdict::refused) << value << ": " << outcome.reason;
        EXPECT_EQ(outcome.granted, cpus(0.75)) << value;
    }
    EXPECT_NE(pool.evaluate({"vm1", "vm2", std::nan("")}).reason.find("not a finite number"),
              std::string::npos);
    EXPECT_NE(pool.evaluate({"vm1", "vm2", -1}).reason.find("must be positive"), std::string::npos);
    EXPECT_NE(pool.evaluate({"vm1", "vm2", 5000}).reason.find("absurd"), std::string::npos);
}

TEST(Directive, BeyondMaxIsClamped) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm3", 1.8});
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.granted, cpus(1.5));
    EXPECT_NE(outcome.reason.find("1.8 CPU is above vm3's maximum, 1.5 CPU"), std::string::npos)
        << outcome.reason;
    EXPECT_EQ(sum_after(pool, outcome), pool.total());
}

TEST(Directive, BelowMinIsClamped) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm3", 0.01});
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.granted, cpus(0.5));
    EXPECT_NE(outcome.reason.find("below vm3's minimum"), std::string::npos) << outcome.reason;
}

TEST(Directive, ClampedByWhatTheDonorsCanGive) {
    CapacityPool pool(three_partitions());
    // vm2 may go to 2, but the others can give only 0.4 + 0.25 above their
    // minimums.
    const auto outcome = pool.evaluate({"vm1", "vm2", 2});
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.granted, cpus(0.75 + 0.65));
    EXPECT_EQ(change_of(outcome, "vm1")->after, cpus(0.1));
    EXPECT_EQ(change_of(outcome, "vm3")->after, cpus(0.5));
    EXPECT_NE(outcome.reason.find("the others can give only 0.65 CPU"), std::string::npos)
        << outcome.reason;
    pool.commit(outcome);
    // Nothing left to give: clamped, nothing moves.
    const auto again = pool.evaluate({"vm1", "vm2", 1.9});
    EXPECT_EQ(again.verdict, Verdict::clamped);
    EXPECT_EQ(again.granted, pool.cap("vm2"));
    EXPECT_EQ(again.changes.size(), 1u);
}

TEST(Directive, AlreadyThereIsAppliedWithoutChange) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm2", 0.75});
    EXPECT_EQ(outcome.verdict, Verdict::applied);
    ASSERT_EQ(outcome.changes.size(), 1u);
    EXPECT_EQ(outcome.changes[0].before, outcome.changes[0].after);
    EXPECT_EQ(outcome.reason, "vm2 stays at 0.75 CPU");
}

TEST(Directive, ThePrivilegedPartitionMayResizeItself) {
    CapacityPool pool(three_partitions());
    EXPECT_EQ(pool.evaluate({"vm1", "vm1", 0.8}).verdict, Verdict::applied);
}

TEST(SplitProportionally, ExactAndBounded) {
    EXPECT_EQ(split_proportionally(10, {4, 4, 4}), (std::vector<std::int64_t>{4, 3, 3}));
    EXPECT_EQ(split_proportionally(0, {5, 5}), (std::vector<std::int64_t>{0, 0}));
    EXPECT_EQ(split_proportionally(7, {0, 7}), (std::vector<std::int64_t>{0, 7}));
    EXPECT_EQ(split_proportionally(3, {1, 1, 1}), (std::vector<std::int64_t>{1, 1, 1}));
    EXPECT_THROW(split_proportionally(4, {1, 2}), std::invalid_argument);
    EXPECT_THROW(split_proportionally(-1, {1, 2}), std::invalid_argument);

    std::mt19937_64 random(7);
    for (int round = 0; round < 2000; ++round) {
        std::vector<std::int64_t> weights(1 + random() % 6);
        for (auto& w : weights)
            w = static_cast<std::int64_t>(random() % 300'000);
        const auto total = std::accumulate(weights.begin(), weights.end(), std::int64_t{0});
        const auto amount = total == 0 ? 0 : static_cast<std::int64_t>(random() % (total + 1));
        const auto parts = split_proportionally(amount, weights);
        ASSERT_EQ(std::accumulate(parts.begin(), parts.end(), std::int64_t{0}), amount);
        for (std::size_t i = 0; i < parts.size(); ++i) {
            ASSERT_GE(parts[i], 0);
            ASSERT_LE(parts[i], weights[i]);
        }
    }
}

TEST(Donor, AnIncreaseIsTakenFromTheDonorAlone) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm2", 1.0, "vm3"});
    EXPECT_EQ(outcome.verdict, Verdict::applied) << outcome.reason;
    ASSERT_EQ(outcome.changes.size(), 2u);
    EXPECT_EQ(outcome.changes[0], (CapChange{"vm2", cpus(0.75), cpus(1.0)}));
    EXPECT_EQ(outcome.changes[1], (CapChange{"vm3", cpus(0.75), cpus(0.5)}));
    EXPECT_EQ(change_of(outcome, "vm1"), nullptr) << "vm1 has more to spare but is not the donor";
    EXPECT_EQ(outcome.reason, "vm2 0.75 CPU -> 1 CPU, taken from vm3 0.25 CPU");
}

TEST(Donor, ADecreaseGoesToTheDonorAlone) {
    CapacityPool pool(three_partitions());
    const auto outcome = pool.evaluate({"vm1", "vm2", 0.5, "vm1"});
    EXPECT_EQ(outcome.verdict, Verdict::applied) << outcome.reason;
    ASSERT_EQ(outcome.changes.size(), 2u);
    EXPECT_EQ(*change_of(outcome, "vm1"), (CapChange{"vm1", cpus(0.5), cpus(0.75)}));
    EXPECT_EQ(change_of(outcome, "vm3"), nullptr);
    EXPECT_EQ(sum_after(pool, outcome), pool.total());
}

TEST(Donor, ClampedByWhatTheDonorCanGiveOrTake) {
    CapacityPool pool(three_partitions());
    // vm3 is 0.25 above its minimum; the others together could give 0.65.
    auto outcome = pool.evaluate({"vm1", "vm2", 1.5, "vm3"});
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.granted, cpus(1.0));
    EXPECT_EQ(outcome.reason.rfind("vm3 can give only 0.25 CPU without going below the minimum; "
                                   "vm2 0.75 CPU -> 1 CPU",
                                   0),
              0u)
        << "why it was clamped comes first: " << outcome.reason;
    // vm1 has room for 0.5 below its maximum.
    outcome = pool.evaluate({"vm1", "vm2", 0.25, "vm1"});
    EXPECT_EQ(outcome.verdict, Verdict::applied) << outcome.reason;
    EXPECT_EQ(outcome.granted, cpus(0.25));
    outcome = pool.evaluate({"vm1", "vm3", 0.5, "vm1"});
    EXPECT_EQ(outcome.verdict, Verdict::applied);
    pool.commit(outcome);
    outcome = pool.evaluate({"vm1", "vm2", 0.25, "vm1"});
    EXPECT_EQ(outcome.verdict, Verdict::clamped);
    EXPECT_EQ(outcome.granted, cpus(0.5)) << "vm1 had room for 0.25 only: " << outcome.reason;
    EXPECT_NE(outcome.reason.find("vm1 can take only 0.25 CPU without going above the maximum"),
              std::string::npos)
        << outcome.reason;
}

TEST(Donor, UnknownOrTheTargetItselfIsRefused) {
    CapacityPool pool(three_partitions());
    auto outcome = pool.evaluate({"vm1", "vm2", 1.0, "vm9"});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_EQ(outcome.reason, "unknown donor partition 'vm9' (known: vm1, vm2, vm3)");
    EXPECT_EQ(outcome.granted, cpus(0.75));
    outcome = pool.evaluate({"vm1", "vm2", 1.0, std::string("v\x01")});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_NE(outcome.reason.find("'v\\x01'"), std::string::npos) << outcome.reason;
    outcome = pool.evaluate({"vm1", "vm2", 1.0, "vm2"});
    EXPECT_EQ(outcome.verdict, Verdict::refused);
    EXPECT_EQ(outcome.reason, "the donor must be another partition than the target");
    // Authorization comes first.
    outcome = pool.evaluate({"vm2", "vm2", 1.0, "vm9"});
    EXPECT_NE(outcome.reason.find("not WLM-privileged"), std::string::npos) << outcome.reason;
}

TEST(Restore, TakesOverAValidStateOfThePool) {
    CapacityPool pool(three_partitions());
    const Caps caps = {{"vm1", cpus(0.2)}, {"vm2", cpus(1.3)}, {"vm3", cpus(0.5)}};
    pool.restore(caps);
    EXPECT_EQ(pool.caps(), caps);
    EXPECT_EQ(pool.total(), cpus(2));
    // Directives go on from there.
    const auto outcome = pool.evaluate({"vm1", "vm2", 1.5});
    EXPECT_EQ(outcome.verdict, Verdict::clamped) << "only vm1 has 0.1 to spare";
    EXPECT_EQ(outcome.granted, cpus(1.4));
}

TEST(Restore, RefusesWhatThePoolCouldNotBe) {
    const std::vector<std::pair<Caps, std::string>> cases = {
        {{{"vm1", cpus(0.5)}, {"vm2", cpus(0.75)}}, "other partitions"},
        {{{"vm1", cpus(0.5)}, {"vm2", cpus(0.75)}, {"vm3", cpus(0.75)}, {"vm4", cpus(0)}},
         "other partitions"},
        {{{"vm1", cpus(0.5)}, {"vm2", cpus(0.75)}, {"vm9", cpus(0.75)}}, "lack partition vm3"},
        {{{"vm1", cpus(0.05)}, {"vm2", cpus(1.2)}, {"vm3", cpus(0.75)}},
         "restored cap of vm1, 0.05 CPU, is outside its bounds"},
        {{{"vm1", cpus(0.5)}, {"vm2", cpus(0.25)}, {"vm3", cpus(1.6)}}, "vm3, 1.6 CPU"},
        {{{"vm1", cpus(0.5)}, {"vm2", cpus(0.75)}, {"vm3", cpus(0.7)}},
         "add up to 1.95 CPU, not 2 CPU"},
    };
    for (const auto& [caps, message] : cases) {
        CapacityPool pool(three_partitions());
        try {
            pool.restore(caps);
            ADD_FAILURE() << "restored: " << message;
        } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
        }
        EXPECT_EQ(pool.cap("vm2"), cpus(0.75)) << "unchanged";
    }
}

// Random directives, good and bad, from privileged and not: the pool total
// never changes, every cap stays within its [min, max], refused directives
// change nothing, and a target never ends above what it asked for unless
// that was below its minimum.
TEST(DirectiveProperty, PoolTotalIsInvariantOverRandomSequences) {
    std::mt19937_64 random(20251125);
    const std::vector<std::string> names = {"vm1", "vm2", "vm3", "vm4", "bogus", ""};
    std::map<Verdict, int> seen;
    for (int run = 0; run < 50; ++run) {
        Policy policy;
        policy.host_cpus = 1 + static_cast<double>(random() % 16);
        policy.privileged = "vm1";
        const std::size_t count = 2 + random() % 3;
        const std::int64_t host_units = static_cast<std::int64_t>(policy.host_cpus) * 100'000;
        for (std::size_t i = 0; i < count; ++i) {
            const std::int64_t share = host_units / static_cast<std::int64_t>(count);
            const auto pick = [&](std::int64_t lo, std::int64_t hi) {
                return lo + static_cast<std::int64_t>(random() %
                                                      static_cast<std::uint64_t>(hi - lo + 1));
            };
            const std::int64_t min = pick(1'000, share / 2);
            const std::int64_t max = pick(share, host_units);
            const std::int64_t entitlement = pick(min, share);
            policy.partitions.push_back(
                {"vm" + std::to_string(i + 1), {entitlement}, {min}, {max}, 100, {}});
        }
        ASSERT_TRUE(validate_policy(policy).empty());
        CapacityPool pool(policy);
        const auto total = pool.total();
        std::uniform_real_distribution<double> amount(-0.5, policy.host_cpus * 1.5);
        for (int step = 0; step < 300; ++step) {
            Directive d;
            d.from = random() % 5 ? "vm1" : names[random() % names.size()];
            d.target = names[random() % names.size()];
            switch (random() % 10) {
            case 0:
                d.cpu = std::nan("");
                break;
            case 1:
                d.cpu = 1e12;
                break;
            default:
                d.cpu = amount(random);
            }
            if (random() % 6 == 0)
                d.donor = names[random() % 5]; // mostly partitions, some bogus
            const auto before = pool.caps();
            const auto outcome = pool.evaluate(d);
            ASSERT_EQ(sum_after(pool, outcome), total);
            // With a donor, only the target and the donor move.
            if (d.donor)
                for (const auto& change : outcome.changes)
                    ASSERT_TRUE(change.partition == d.target || change.partition == *d.donor)
                        << change.partition;
            if (outcome.verdict == Verdict::refused) {
                for (const auto& change : outcome.changes)
                    ASSERT_EQ(change.before, change.after);
            }
            pool.commit(outcome);
            ASSERT_EQ(pool.total(), total) << "step " << step << ": " << outcome.reason;
            ++seen[outcome.verdict];
            if (outcome.verdict == Verdict::refused) {
                ASSERT_EQ(pool.caps(), before);
            }
            for (const auto& p : pool.policy().partitions) {
                ASSERT_GE(pool.cap(p.name), p.min) << p.name;
                ASSERT_LE(pool.cap(p.name), p.max) << p.name;
            }
            if (outcome.verdict != Verdict::refused && d.cpu >= 0.01 &&
                pool.policy().find(d.target)->min <= CpuAmount::from_cpus(d.cpu)) {
                const auto before_target = before.at(d.target);
                const auto asked = CpuAmount::from_cpus(d.cpu);
                // Moves toward what was asked, never past it.
                if (asked >= before_target) {
                    ASSERT_LE(pool.cap(d.target), asked);
                } else {
                    ASSERT_GE(pool.cap(d.target), asked);
                }
            }
        }
    }
    // The sequences exercised every kind of answer.
    EXPECT_GT(seen[Verdict::applied], 500);
    EXPECT_GT(seen[Verdict::clamped], 1000);
    EXPECT_GT(seen[Verdict::refused], 1000);
}

} // namespace
} // namespace partlink::capacity
