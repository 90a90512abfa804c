// The cgroup v1 `cpu` controller against a fake tree, and the pieces both
// versions share (CpuCap, weight <-> shares).
#include <cmath>
#include <unistd.h>

#include <gtest/gtest.h>

#include "cgroup.hpp"
#include "fake_cgroup.hpp"

namespace partlink::capacity {
namespace {

using testing::FakeHost;
using testing::read_file;
using testing::write_file;
namespace fs = std::filesystem;

class CgroupV1 : public ::testing::Test {
protected:
    FakeHost host{CgroupVersion::v1};
    CpuController& ctl = *host.controller;
};

TEST_F(CgroupV1, CreatesNestedGroupsWithoutTouchingParents) {
    auto group = PartitionCgroup::create(host.controller, "run-1", "vm2");
    EXPECT_EQ(group.path(), host.root / "partlink/run-1/vm2");
    EXPECT_TRUE(fs::is_directory(group.path()));
    // Intermediate groups stay unlimited: on v1 a child's quota may not
    // exceed its parent's.
    EXPECT_EQ(read_file(host.root / "partlink/run-1/cpu.cfs_quota_us"), "-1\n");
}

TEST_F(CgroupV1, CapIsQuotaOverPeriod) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.set_cap(CpuCap::from_cpus(0.5));
    EXPECT_EQ(read_file(group.path() / "cpu.cfs_period_us"), "100000\n");
    EXPECT_EQ(read_file(group.path() / "cpu.cfs_quota_us"), "50000\n");
    EXPECT_EQ(group.cap(), (CpuCap{50000, 100000}));

    group.set_cap(CpuCap::unlimited());
    EXPECT_EQ(read_file(group.path() / "cpu.cfs_quota_us"), "-1\n");
    EXPECT_TRUE(group.cap().is_unlimited());

    group.set_cap(CpuCap::from_cpus(2.25, 20000));
    EXPECT_EQ(read_file(group.path() / "cpu.cfs_period_us"), "20000\n");
    EXPECT_EQ(read_file(group.path() / "cpu.cfs_quota_us"), "45000\n");
}

TEST_F(CgroupV1, RejectsAPeriodTheKernelWouldRefuse) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    EXPECT_THROW(group.set_cap(CpuCap{50000, 500}), CgroupError);
    EXPECT_THROW(group.set_cap(CpuCap{50000, 2'000'000}), CgroupError);
}

TEST_F(CgroupV1, WeightBecomesShares) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.set_weight(100);
    EXPECT_EQ(read_file(group.path() / "cpu.shares"), "1024\n");
    EXPECT_EQ(group.weight(), 100u);
    group.set_weight(1);
    EXPECT_EQ(read_file(group.path() / "cpu.shares"), "10\n");
    group.set_weight(10000);
    EXPECT_EQ(read_file(group.path() / "cpu.shares"), "102400\n");
    write_file(group.path() / "cpu.shares", "262144\n"); // v1's maximum
    EXPECT_EQ(group.weight(), 10000u);
}

TEST(Weights, RoundTripAndBounds) {
    for (std::uint32_t w = kMinWeight; w <= kMaxWeight; ++w)
        ASSERT_EQ(shares_to_weight(weight_to_shares(w)), w) << w;
    EXPECT_EQ(weight_to_shares(kDefaultWeight), 1024u);
    EXPECT_EQ(shares_to_weight(1024), kDefaultWeight);
    EXPECT_EQ(shares_to_weight(2), 1u);
    EXPECT_EQ(shares_to_weight(0), 1u);
    EXPECT_EQ(shares_to_weight(1'000'000), kMaxWeight);
    EXPECT_GE(weight_to_shares(0), kMinShares);
}

TEST(CpuCapTest, FromCpus) {
    EXPECT_EQ(CpuCap::from_cpus(0.5), (CpuCap{50000, 100000}));
    EXPECT_EQ(CpuCap::from_cpus(2), (CpuCap{200000, 100000}));
    EXPECT_EQ(CpuCap::from_cpus(0.01), (CpuCap{1000, 100000}));
    EXPECT_EQ(CpuCap::from_cpus(0.5).describe(), "0.5 CPU (50000/100000 us)");
    EXPECT_EQ(CpuCap::unlimited().describe(), "unlimited");
    for (double bad : {0.0, -1.0, double(NAN), double(INFINITY), 0.001, 1e9})
        EXPECT_THROW(CpuCap::from_cpus(bad), CgroupError) << bad;
    EXPECT_THROW(CpuCap::from_cpus(1, 999), CgroupError);
}

TEST_F(CgroupV1, MovesEveryThreadThroughTasks) {
    host.add_process(4242, {4242, 4243, 4250});
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.move_pid(4242);
    auto tasks = testing::read_file(group.path() / "tasks");
    for (const char* tid : {"4242\n", "4243\n", "4250\n"})
        EXPECT_NE(tasks.find(tid), std::string::npos) << tasks;
    EXPECT_EQ(std::count(tasks.begin(), tasks.end(), '\n'), 3);
    write_file(group.path() / "tasks", ""); // the fake's tasks never leave by themselves
}

TEST_F(CgroupV1, MovingAMissingProcessSaysSo) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    try {
        group.move_pid(999999);
        FAIL() << "expected an error";
    } catch (const CgroupError& e) {
        EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
    }
}

TEST_F(CgroupV1, ThrottlingIsConvertedFromNanoseconds) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(group.path() / "cpu.stat",
               "nr_periods 50\nnr_throttled 20\nthrottled_time 1500000000\nnr_bursts 0\n"
               "burst_time 0\n");
    const auto stat = group.stat();
    EXPECT_EQ(stat.nr_periods, 50u);
    EXPECT_EQ(stat.nr_throttled, 20u);
    EXPECT_EQ(stat.throttled.count(), 1'500'000);
}

TEST_F(CgroupV1, UsageFromCpuacctWhenCoMounted) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(group.path() / "cpuacct.usage", "2500000000\n");
    const auto stat = group.stat();
    ASSERT_TRUE(stat.usage);
    EXPECT_EQ(stat.usage->count(), 2'500'000);
    EXPECT_FALSE(stat.usage_approximate);
}

TEST_F(CgroupV1, UsageFromTheTasksOtherwise) {
    host.add_process(500, {500, 501}, 3'000'000'000);
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.move_pid(500);
    const auto stat = group.stat();
    ASSERT_TRUE(stat.usage);
    EXPECT_EQ(stat.usage->count(), 6'000'000); // two threads, 3 s each
    EXPECT_TRUE(stat.usage_approximate);
    write_file(group.path() / "tasks", "");
}

TEST_F(CgroupV1, StragglersGoToTheParent) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(group.path() / "tasks", "777\n");
    // The fake does not move tasks, so removal gives up; what matters is
    // that they were sent to the parent (v1 lets every group hold tasks).
    EXPECT_THROW(group.remove(), CgroupError);
    EXPECT_NE(read_file(host.root / "partlink/r/tasks").find("777"), std::string::npos);
    write_file(group.path() / "tasks", "");
    write_file(host.root / "partlink/r/tasks", "");
}

TEST_F(CgroupV1, RemovedWhenEmpty) {
    fs::path path;
    {
        auto group = PartitionCgroup::create(host.controller, "r", "vm1");
        path = group.path();
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_FALSE(fs::exists(path.parent_path()));
    EXPECT_EQ(host.ops->removed.size(), 2u);
}

TEST_F(CgroupV1, CheckAccessWithoutPermissionSaysWhatToDo) {
    // No partlink/ yet: the unprivileged process fails creating it, with the
    // kernel dir ops partlinkd uses.
    auto real_ops = make_cpu_controller({CgroupVersion::v1, host.root}, {host.proc, nullptr});
    EXPECT_EXIT(
        {
            if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
                _exit(2);
            try {
                real_ops->check_access();
            } catch (const CgroupPermissionError& e) {
                std::fprintf(stderr, "%s\n", e.what());
                _exit(3);
            } catch (...) {
                _exit(4);
            }
            _exit(0);
        },
        ::testing::ExitedWithCode(3), "creating cgroup .*partlink failed: Permission denied");
}

TEST_F(CgroupV1, CheckAccessChecksTheFilesItWillWrite) {
    ctl.check_access();
    EXPECT_TRUE(fs::is_directory(host.root / "partlink"));
    fs::remove(host.root / "partlink/cpu.shares");
    EXPECT_THROW(ctl.check_access(), CgroupError);
}

} // namespace
} // namespace partlink::capacity
