// The cgroup v2 controller against a fake tree.
#include <sys/wait.h>
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

class CgroupV2 : public ::testing::Test {
protected:
    FakeHost host{CgroupVersion::v2};
    CpuController& ctl = *host.controller;
};

TEST_F(CgroupV2, CreatesPartitionGroupEnablingCpuDownThePath) {
    auto group = PartitionCgroup::create(host.controller, "run-1", "vm1");
    EXPECT_EQ(group.path(), host.root / "partlink/run-1/vm1");
    EXPECT_TRUE(fs::is_directory(group.path()));
    // Each ancestor must delegate cpu, or the leaf has no cpu.max.
    for (const auto& dir : {host.root, host.root / "partlink", host.root / "partlink/run-1"})
        EXPECT_EQ(read_file(dir / "cgroup.subtree_control"), "+cpu\n") << dir;
    EXPECT_EQ(read_file(group.path() / "cgroup.subtree_control"), "");
}

TEST_F(CgroupV2, LeavesCpuAloneWhereItIsAlreadyEnabled) {
    write_file(host.root / "cgroup.subtree_control", "cpu memory\n");
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    EXPECT_EQ(read_file(host.root / "cgroup.subtree_control"), "cpu memory\n");
}

TEST_F(CgroupV2, RefusesWhenTheParentDoesNotOfferCpu) {
    write_file(host.root / "cgroup.controllers", "memory pids\n");
    try {
        PartitionCgroup::create(host.controller, "r", "vm1");
        FAIL() << "expected an error";
    } catch (const CgroupError& e) {
        EXPECT_NE(std::string(e.what()).find("cpu controller is not available"), std::string::npos)
            << e.what();
    }
}

TEST_F(CgroupV2, SetsAndReadsCaps) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.set_cap(CpuCap::from_cpus(0.5));
    EXPECT_EQ(read_file(group.path() / "cpu.max"), "50000 100000\n");
    EXPECT_EQ(group.cap(), (CpuCap{50000, 100000}));
    EXPECT_DOUBLE_EQ(*group.cap().cpus(), 0.5);

    group.set_cap(CpuCap::unlimited());
    EXPECT_EQ(read_file(group.path() / "cpu.max"), "max 100000\n");
    EXPECT_TRUE(group.cap().is_unlimited());

    group.set_cap(CpuCap::from_cpus(1.5, 50000));
    EXPECT_EQ(read_file(group.path() / "cpu.max"), "75000 50000\n");
}

TEST_F(CgroupV2, RejectsMalformedCpuMax) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(group.path() / "cpu.max", "banana\n");
    EXPECT_THROW(group.cap(), CgroupError);
    write_file(group.path() / "cpu.max", "x 100000\n");
    EXPECT_THROW(group.cap(), CgroupError);
}

TEST_F(CgroupV2, WeightsAreWrittenAsIs) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.set_weight(250);
    EXPECT_EQ(read_file(group.path() / "cpu.weight"), "250\n");
    EXPECT_EQ(group.weight(), 250u);
    EXPECT_THROW(group.set_weight(0), CgroupError);
    EXPECT_THROW(group.set_weight(10001), CgroupError);
}

TEST_F(CgroupV2, ReadsThrottlingAndUsage) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(
        group.path() / "cpu.stat",
        "usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\ncore_sched.force_idle_usec 0\n"
        "nr_periods 40\nnr_throttled 12\nthrottled_usec 98765\nnr_bursts 0\nburst_usec 0\n");
    const auto stat = group.stat();
    EXPECT_EQ(stat.nr_periods, 40u);
    EXPECT_EQ(stat.nr_throttled, 12u);
    EXPECT_EQ(stat.throttled.count(), 98765);
    ASSERT_TRUE(stat.usage);
    EXPECT_EQ(stat.usage->count(), 123456);
    EXPECT_FALSE(stat.usage_approximate);
}

TEST_F(CgroupV2, MovesAProcessByPid) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    group.move_pid(4242);
    // One write of the pid: the kernel moves all its threads.
    EXPECT_EQ(read_file(group.path() / "cgroup.procs"), "4242\n");
    EXPECT_EQ(ctl.processes(group.path()), std::vector<pid_t>{4242});
    write_file(group.path() / "cgroup.procs", ""); // the fake's never leave by themselves
}

TEST_F(CgroupV2, RefusesThreadedAndInvalidGroups) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    for (const char* type : {"threaded\n", "domain invalid\n"}) {
        write_file(group.path() / "cgroup.type", type);
        try {
            group.move_pid(4242);
            FAIL() << "expected a refusal for " << type;
        } catch (const CgroupError& e) {
            EXPECT_NE(std::string(e.what()).find("domain group"), std::string::npos) << e.what();
        }
    }
    write_file(group.path() / "cgroup.type", "domain threaded\n");
    EXPECT_NO_THROW(group.move_pid(4242));
    write_file(group.path() / "cgroup.procs", "");
}

TEST_F(CgroupV2, RemovesTheGroupAndItsEmptyRunDirectory) {
    {
        auto vm1 = PartitionCgroup::create(host.controller, "run-7", "vm1");
        auto vm2 = PartitionCgroup::create(host.controller, "run-7", "vm2");
        vm1.remove();
        EXPECT_FALSE(vm1.owns());
        EXPECT_FALSE(fs::exists(host.root / "partlink/run-7/vm1"));
        EXPECT_TRUE(fs::exists(host.root / "partlink/run-7")); // vm2 is still there
    }
    EXPECT_FALSE(fs::exists(host.root / "partlink/run-7"));
    EXPECT_TRUE(fs::exists(host.root / "partlink")); // shared between runs
}

TEST_F(CgroupV2, StragglersGoWhereProcessesMayLive) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    write_file(group.path() / "cgroup.procs", "777\n");
    // The fake does not move processes, so the group never empties; what we
    // check is where they were sent: past partlink/ and r/, which delegate
    // cpu and so may not hold processes, to the root.
    EXPECT_THROW(group.remove(), CgroupError);
    EXPECT_NE(read_file(host.root / "cgroup.procs").find("777"), std::string::npos);
    EXPECT_EQ(read_file(host.root / "partlink/cgroup.procs"), "");
    EXPECT_EQ(read_file(host.root / "partlink/r/cgroup.procs"), "");
    write_file(group.path() / "cgroup.procs", "");
}

TEST_F(CgroupV2, RefusesToRemoveAGroupWithChildren) {
    auto run = PartitionCgroup::create_at(host.controller, "partlink/solo");
    auto child = PartitionCgroup::create_at(host.controller, "partlink/solo/inner");
    EXPECT_THROW(run.remove(), CgroupError);
    EXPECT_TRUE(fs::exists(host.root / "partlink/solo"));
    child.remove();
    run.remove();
    EXPECT_FALSE(fs::exists(host.root / "partlink/solo"));
}

TEST_F(CgroupV2, ReleaseLeavesTheDirectory) {
    fs::path kept;
    {
        auto group = PartitionCgroup::create(host.controller, "r", "vm1");
        kept = group.release();
    }
    EXPECT_TRUE(fs::exists(kept));
}

TEST_F(CgroupV2, MoveAssignmentRemovesTheOldGroup) {
    auto a = PartitionCgroup::create(host.controller, "r", "a");
    const auto a_path = a.path();
    a = PartitionCgroup::create(host.controller, "r", "b");
    EXPECT_FALSE(fs::exists(a_path));
    EXPECT_TRUE(fs::exists(a.path()));
}

TEST_F(CgroupV2, NeverTouchesAnythingOutsideTheHierarchy) {
    EXPECT_THROW(ctl.set_cap("/etc", CpuCap::from_cpus(1)), CgroupError);
    EXPECT_THROW(ctl.set_cap(host.root / "../cpu", CpuCap::from_cpus(1)), CgroupError);
    EXPECT_THROW(ctl.remove_group(host.root), CgroupError);
    EXPECT_THROW(ctl.create_group("../escape"), CgroupError);
    EXPECT_THROW(ctl.create_group("/abs"), CgroupError);
    EXPECT_THROW(PartitionCgroup::create(host.controller, "..", "vm1"), CgroupError);
    EXPECT_THROW(PartitionCgroup::create(host.controller, "r", "a/b"), CgroupError);
}

TEST_F(CgroupV2, AnExistingGroupIsNotAdopted) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    EXPECT_THROW(PartitionCgroup::create(host.controller, "r", "vm1"), CgroupError);
}

TEST_F(CgroupV2, CheckAccessCreatesTheBaseGroup) {
    ctl.check_access();
    EXPECT_TRUE(fs::is_directory(host.root / "partlink"));
    EXPECT_EQ(read_file(host.root / "cgroup.subtree_control"), "+cpu\n");
}

// Root ignores file permissions, so become nobody in a child process to see
// the error an unprivileged partlinkd would get.
TEST_F(CgroupV2, CheckAccessWithoutPermissionSaysWhatToDo) {
    ctl.check_access(); // as root: partlink/ exists, owned by root
    EXPECT_EXIT(
        {
            if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
                _exit(2);
            try {
                ctl.check_access();
            } catch (const CgroupPermissionError& e) {
                std::fprintf(stderr, "%s\n", e.what());
                _exit(3);
            } catch (...) {
                _exit(4);
            }
            _exit(0);
        },
        ::testing::ExitedWithCode(3), "partlink/cgroup.procs.*run it as root, or delegate");
}

TEST_F(CgroupV2, WriteWithoutPermissionIsAnErrorNotANoOp) {
    auto group = PartitionCgroup::create(host.controller, "r", "vm1");
    EXPECT_EXIT(
        {
            if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0)
                _exit(2);
            try {
                group.set_cap(CpuCap::from_cpus(0.5));
            } catch (const CgroupPermissionError& e) {
                std::fprintf(stderr, "%s\n", e.what());
                _exit(3);
            } catch (...) {
                _exit(4);
            }
            _exit(0);
        },
        ::testing::ExitedWithCode(3), "cpu.max.*Permission denied");
}

} // namespace
} // namespace partlink::capacity
