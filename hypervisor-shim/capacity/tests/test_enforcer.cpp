// Applying directive outcomes through a CpuController, and verifying them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "enforcer.hpp"
#include "fake_cgroup.hpp"

namespace partlink::capacity {
namespace {

using ::testing::_;
using testing::FakeHost;
using ::testing::InSequence;
using testing::read_file;
using testing::write_file;
namespace fs = std::filesystem;

CpuAmount cpus(double value) {
    return CpuAmount::from_cpus(value);
}

Policy three_partitions() {
    Policy policy;
    policy.host_cpus = 2;
    policy.privileged = "vm1";
    policy.partitions = {{"vm1", cpus(0.5), cpus(0.1), cpus(1), 100, {}},
                         {"vm2", cpus(0.75), cpus(0.25), cpus(2), 300, {}},
                         {"vm3", cpus(0.75), cpus(0.5), cpus(1.5), 50, {}}};
    return policy;
}

// Three partition groups on a fake host of either version.
class EnforcerOnFake : public ::testing::TestWithParam<CgroupVersion> {
protected:
    EnforcerOnFake() {
        for (const char* name : {"vm1", "vm2", "vm3"}) {
            groups.emplace(name, PartitionCgroup::create(host.controller, "run", name));
            paths.emplace(name, groups.at(name).path());
        }
    }

    Enforcer make_enforcer(std::function<void(std::chrono::milliseconds)> sleep = {}) {
        if (!sleep)
            sleep = [this](std::chrono::milliseconds d) {
                slept += d;
            };
        return Enforcer(host.controller, paths, {std::chrono::milliseconds(250), sleep});
    }

    std::string quota_file(const std::string& partition) const {
        const auto& dir = paths.at(partition);
        return GetParam() == CgroupVersion::v2 ? read_file(dir / "cpu.max")
                                               : read_file(dir / "cpu.cfs_quota_us");
    }

    void set_stat(const std::string& partition, int periods, int throttled, long long usec) {
        const auto file = paths.at(partition) / "cpu.stat";
        if (GetParam() == CgroupVersion::v2)
            write_file(file, "usage_usec " + std::to_string(usec * 3) + "\nnr_periods " +
                                 std::to_string(periods) + "\nnr_throttled " +
                                 std::to_string(throttled) + "\nthrottled_usec " +
                                 std::to_string(usec) + "\n");
        else
            write_file(file, "nr_periods " + std::to_string(periods) + "\nnr_throttled " +
                                 std::to_string(throttled) + "\nthrottled_time " +
                                 std::to_string(usec * 1000) + "\n");
    }

    FakeHost host{GetParam()};
    std::map<std::string, PartitionCgroup> groups;
    std::map<std::string, fs::path, std::less<>> paths;
    CapacityPool pool{three_partitions()};
    std::chrono::milliseconds slept{0};
};

TEST_P(EnforcerOnFake, ApplyPoolSetsEveryCapAndWeight) {
    make_enforcer().apply_pool(pool);
    if (GetParam() == CgroupVersion::v2) {
        EXPECT_EQ(read_file(paths.at("vm1") / "cpu.max"), "50000 100000\n");
        EXPECT_EQ(read_file(paths.at("vm2") / "cpu.weight"), "300\n");
    } else {
        EXPECT_EQ(read_file(paths.at("vm1") / "cpu.cfs_quota_us"), "50000\n");
        EXPECT_EQ(read_file(paths.at("vm2") / "cpu.shares"), "3072\n");
        EXPECT_EQ(read_file(paths.at("vm3") / "cpu.shares"), "512\n");
    }
    EXPECT_EQ(quota_file("vm3").substr(0, 5), "75000");
}

TEST_P(EnforcerOnFake, AppliesAndVerifiesAShift) {
    auto enforcer = make_enforcer();
    enforcer.apply_pool(pool);
    const auto outcome = pool.evaluate({"vm1", "vm2", 1.0});
    const auto record = enforcer.enforce(outcome);

    EXPECT_EQ(record.result, AuditResult::applied) << record.reason;
    EXPECT_EQ(record.from, "vm1");
    EXPECT_EQ(record.target, "vm2");
    EXPECT_EQ(record.changes, outcome.changes);
    EXPECT_EQ(slept, std::chrono::milliseconds(250));
    if (GetParam() == CgroupVersion::v2) {
        EXPECT_EQ(quota_file("vm2"), "100000 100000\n");
        EXPECT_EQ(quota_file("vm1"), "34615 100000\n");
        EXPECT_EQ(quota_file("vm3"), "65385 100000\n");
    } else {
        EXPECT_EQ(quota_file("vm2"), "100000\n");
        EXPECT_EQ(quota_file("vm1"), "34615\n");
    }
    ASSERT_TRUE(record.verification);
    EXPECT_TRUE(record.verification->ok);
    EXPECT_EQ(record.verification->window_ms, 250);
    ASSERT_EQ(record.verification->partitions.size(), 3u);
    const auto& vm2 = *std::find_if(record.verification->partitions.begin(),
                                    record.verification->partitions.end(),
                                    [](const PartitionCheck& c) { return c.partition == "vm2"; });
    EXPECT_TRUE(vm2.matches);
    EXPECT_DOUBLE_EQ(*vm2.expected_cpus, 1.0);
    EXPECT_DOUBLE_EQ(*vm2.read_back_cpus, 1.0);
    EXPECT_EQ(vm2.periods, 0u); // nothing ran in the fake

    pool.commit(outcome);
    EXPECT_EQ(pool.cap("vm2"), cpus(1.0));
}

TEST_P(EnforcerOnFake, ReportsThrottlingOverTheWindow) {
    auto enforcer =
        make_enforcer([this](std::chrono::milliseconds) { set_stat("vm3", 13, 7, 90'000); });
    enforcer.apply_pool(pool);
    set_stat("vm3", 10, 4, 50'000);
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm3", 0.6}));
    ASSERT_TRUE(record.verification);
    const auto& vm3 = record.verification->partitions.front();
    EXPECT_EQ(vm3.partition, "vm3"); // the target comes first
    EXPECT_EQ(vm3.periods, 3u);
    EXPECT_EQ(vm3.throttled_periods, 3u);
    EXPECT_EQ(vm3.throttled_usec, 40'000);
    if (GetParam() == CgroupVersion::v2) {
        ASSERT_TRUE(vm3.usage_usec);
        EXPECT_EQ(*vm3.usage_usec, 120'000);
    }
}

TEST_P(EnforcerOnFake, CountersGoingBackwardsCountAsNoGrowth) {
    // A group recreated under us restarts its counters: that is no growth,
    // not a huge unsigned difference.
    auto enforcer =
        make_enforcer([this](std::chrono::milliseconds) { set_stat("vm2", 3, 2, 40'000); });
    enforcer.apply_pool(pool);
    set_stat("vm2", 10, 4, 100'000);
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 0.75}));
    ASSERT_TRUE(record.verification);
    EXPECT_EQ(record.verification->partitions[0].periods, 0u);
    EXPECT_EQ(record.verification->partitions[0].throttled_periods, 0u);
}

TEST_P(EnforcerOnFake, RefusedDirectiveTouchesNothing) {
    auto enforcer = make_enforcer();
    enforcer.apply_pool(pool);
    const auto before = quota_file("vm2");
    const auto record = enforcer.enforce(pool.evaluate({"vm3", "vm2", 1.5}));
    EXPECT_EQ(record.result, AuditResult::refused);
    EXPECT_FALSE(record.verification);
    EXPECT_EQ(quota_file("vm2"), before);
    EXPECT_EQ(slept.count(), 0);
}

TEST_P(EnforcerOnFake, NoOpDirectiveStillVerifiesTheTarget) {
    auto enforcer = make_enforcer();
    enforcer.apply_pool(pool);
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 0.75}));
    EXPECT_EQ(record.result, AuditResult::applied);
    ASSERT_TRUE(record.verification);
    ASSERT_EQ(record.verification->partitions.size(), 1u);
    EXPECT_TRUE(record.verification->partitions[0].matches);
}

TEST_P(EnforcerOnFake, UnreadableStatsAreReportedButCapsStillVerify) {
    auto enforcer = make_enforcer();
    enforcer.apply_pool(pool);
    fs::remove(paths.at("vm3") / "cpu.stat");
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0}));
    ASSERT_TRUE(record.verification);
    // The caps read back right, which is what "took effect" means; the
    // missing counters are reported with the partition.
    EXPECT_TRUE(record.verification->ok);
    const auto& vm3 = record.verification->partitions.back();
    EXPECT_EQ(vm3.partition, "vm3");
    EXPECT_TRUE(vm3.matches);
    EXPECT_NE(vm3.error.find("cpu.stat"), std::string::npos) << vm3.error;
}

TEST_P(EnforcerOnFake, PartitionWithoutAGroupFails) {
    paths.erase("vm3");
    auto enforcer = make_enforcer();
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0}));
    EXPECT_EQ(record.result, AuditResult::failed);
    EXPECT_NE(record.reason.find("vm3 has no cgroup"), std::string::npos) << record.reason;
}

INSTANTIATE_TEST_SUITE_P(BothVersions, EnforcerOnFake,
                         ::testing::Values(CgroupVersion::v2, CgroupVersion::v1),
                         [](const auto& info) {
                             return info.param == CgroupVersion::v2 ? "v2" : "v1";
                         });

// A controller that records calls, for what the fakes cannot show: the order
// of writes and failures part way.
class MockController : public CpuController {
public:
    MockController()
        : CpuController("/fake-cgroup", {}) {
        ON_CALL(*this, set_cap(_, _)).WillByDefault([this](const fs::path& g, const CpuCap& c) {
            caps[g] = c;
        });
        ON_CALL(*this, cap(_)).WillByDefault([this](const fs::path& g) { return caps[g]; });
        ON_CALL(*this, stat(_)).WillByDefault([](const fs::path&) { return CpuStat{}; });
    }
    MOCK_METHOD(CgroupVersion, version, (), (const, override));
    MOCK_METHOD(void, check_access, (), (override));
    MOCK_METHOD(fs::path, create_group, (const fs::path&), (override));
    MOCK_METHOD(void, move_pid, (const fs::path&, pid_t), (override));
    MOCK_METHOD(void, set_cap, (const fs::path&, const CpuCap&), (override));
    MOCK_METHOD(CpuCap, cap, (const fs::path&), (const, override));
    MOCK_METHOD(void, set_weight, (const fs::path&, std::uint32_t), (override));
    MOCK_METHOD(std::uint32_t, weight, (const fs::path&), (const, override));
    MOCK_METHOD(CpuStat, stat, (const fs::path&), (const, override));
    MOCK_METHOD(void, remove_group, (const fs::path&), (override));

    mutable std::map<fs::path, CpuCap> caps;
};

class EnforcerOrder : public ::testing::Test {
protected:
    std::shared_ptr<::testing::NiceMock<MockController>> mock =
        std::make_shared<::testing::NiceMock<MockController>>();
    std::map<std::string, fs::path, std::less<>> paths = {
        {"vm1", "/fake-cgroup/vm1"}, {"vm2", "/fake-cgroup/vm2"}, {"vm3", "/fake-cgroup/vm3"}};
    Enforcer enforcer{mock, paths, {std::chrono::milliseconds(0), [](auto) {
                                    }}};
    CapacityPool pool{three_partitions()};
};

TEST_F(EnforcerOrder, LowersDonorsBeforeRaisingTheTarget) {
    InSequence in_order;
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm1"), _));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm3"), _));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm2"), (CpuCap{100000, 100000})));
    EXPECT_EQ(enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0})).result, AuditResult::applied);
}

TEST_F(EnforcerOrder, RaisesOthersAfterLoweringTheTarget) {
    InSequence in_order;
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm3"), (CpuCap{50000, 100000})));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm1"), _));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm2"), _));
    enforcer.enforce(pool.evaluate({"vm1", "vm3", 0.5}));
}

TEST_F(EnforcerOrder, FailureUndoesWhatWasDone) {
    InSequence in_order;
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm1"), (CpuCap{34615, 100000})));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm3"), (CpuCap{65385, 100000})));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm2"), _))
        .WillOnce([](const fs::path&, const CpuCap&) {
            throw CgroupError("writing to /fake-cgroup/vm2/cpu.max failed: No such device");
        });
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm3"), (CpuCap{75000, 100000})));
    EXPECT_CALL(*mock, set_cap(fs::path("/fake-cgroup/vm1"), (CpuCap{50000, 100000})));
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0}));
    EXPECT_EQ(record.result, AuditResult::failed);
    EXPECT_NE(record.reason.find("No such device"), std::string::npos) << record.reason;
    EXPECT_NE(record.reason.find("were undone"), std::string::npos) << record.reason;
    EXPECT_FALSE(record.verification);
}

TEST_F(EnforcerOrder, ReadBackMismatchIsReported) {
    ON_CALL(*mock, cap(fs::path("/fake-cgroup/vm2"))).WillByDefault([](const fs::path&) {
        return CpuCap::unlimited();
    });
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0}));
    EXPECT_EQ(record.result, AuditResult::applied);
    ASSERT_TRUE(record.verification);
    EXPECT_FALSE(record.verification->ok);
    EXPECT_NE(record.reason.find("verification failed: vm2 reads back a different cap"),
              std::string::npos)
        << record.reason;
}

TEST_F(EnforcerOrder, UnreadableCapFailsVerification) {
    ON_CALL(*mock, cap(fs::path("/fake-cgroup/vm3"))).WillByDefault([](const fs::path&) -> CpuCap {
        throw CgroupError("reading /fake-cgroup/vm3/cpu.max failed: No such file");
    });
    const auto record = enforcer.enforce(pool.evaluate({"vm1", "vm2", 1.0}));
    ASSERT_TRUE(record.verification);
    EXPECT_FALSE(record.verification->ok);
    EXPECT_NE(record.reason.find("verification failed: vm3: reading /fake-cgroup/vm3/cpu.max"),
              std::string::npos)
        << record.reason;
}

TEST(CapFor, PoolUnitsAreQuotaMicroseconds) {
    EXPECT_EQ(cap_for(cpus(0.5)), (CpuCap{50000, 100000}));
    EXPECT_EQ(cap_for(CpuAmount{1000}), (CpuCap{1000, 100000}));
    EXPECT_THROW(cap_for(CpuAmount{999}), CgroupError);
}

} // namespace
} // namespace partlink::capacity
