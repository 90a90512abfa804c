// Placing each partition's QEMU in its own CPU cgroup and removing the
// groups again, on the fake cgroup trees of the capacity tests.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fake_cgroup.hpp"
#include "host/net_setup.hpp"
#include "run/capacity_setup.hpp"
#include "run/state.hpp"
#include "run_state_fixture.hpp"

namespace partlink {
namespace {

namespace fs = std::filesystem;
using capacity::CgroupVersion;
using capacity::testing::FakeHost;
using capacity::testing::read_file;
using capacity::testing::write_file;
using partlink::testing::state_of;

class CgroupsTest : public ::testing::TestWithParam<CgroupVersion> {
protected:
    FakeHost host{GetParam()};
    std::string list_file() const {
        return GetParam() == CgroupVersion::v2 ? "cgroup.procs" : "tasks";
    }
};

TEST_P(CgroupsTest, PlanRecordsRunGroupAndEqualShares) {
    RunState s = state_of(3);
    plan_cgroups(s, *host.controller, 2.0);
    const fs::path run = host.root / "partlink" / run_dir_hash("/tmp/some-run");
    ASSERT_TRUE(s.cgroup_run);
    EXPECT_EQ(*s.cgroup_run, run);
    EXPECT_EQ(cgroup_run_group(*host.controller, "/tmp/some-run"), run);
    for (const auto& p : s.partitions) {
        ASSERT_TRUE(p.cgroup);
        EXPECT_EQ(p.cgroup->path, run / p.name);
        EXPECT_EQ(p.cgroup->entitlement_units, 66'666); // 2 CPUs / 3
        EXPECT_EQ(p.cgroup->weight, 100u);
    }
    EXPECT_FALSE(fs::exists(run)) << "planning must not touch the host";
}

TEST_P(CgroupsTest, PlanRefusesAHostTooSmallForTheMinimum) {
    RunState s = state_of(16);
    EXPECT_THROW(plan_cgroups(s, *host.controller, 1.0), Error);
}

TEST_P(CgroupsTest, CreateAppliesTheEqualShareCapAndWeight) {
    RunState s = state_of(2);
    plan_cgroups(s, *host.controller, 3.0);
    create_cgroups(s, *host.controller);
    for (const auto& p : s.partitions) {
        ASSERT_TRUE(fs::is_directory(p.cgroup->path));
        EXPECT_EQ(host.controller->cap(p.cgroup->path), capacity::CpuCap::from_cpus(1.5));
        EXPECT_EQ(host.controller->weight(p.cgroup->path), 100u);
        if (GetParam() == CgroupVersion::v1) {
            EXPECT_EQ(read_file(p.cgroup->path / "cpu.cfs_quota_us"), "150000\n");
            EXPECT_EQ(read_file(p.cgroup->path / "cpu.shares"), "1024\n");
        } else {
            EXPECT_EQ(read_file(p.cgroup->path / "cpu.max"), "150000 100000\n");
        }
    }
}

TEST_P(CgroupsTest, CreateReplacesALeftoverGroup) {
    RunState s = state_of(1);
    plan_cgroups(s, *host.controller, 2.0);
    const auto& group = s.partitions[0].cgroup->path;
    host.controller->create_group(group.lexically_relative(host.root));
    write_file(group / "cpu.shares", "7\n");
    create_cgroup(s.partitions[0], *host.controller);
    EXPECT_EQ(host.controller->weight(group), 100u);
    EXPECT_EQ(host.controller->cap(group), capacity::CpuCap::from_cpus(2.0));
}

TEST_P(CgroupsTest, MovePutsTheProcessAndEveryThreadInItsGroup) {
    RunState s = state_of(1);
    plan_cgroups(s, *host.controller, 2.0);
    create_cgroups(s, *host.controller);
    host.add_process(4242, {4242, 4243, 4244});
    move_into_cgroup(s.partitions[0], 4242, *host.controller);
    const auto& group = s.partitions[0].cgroup->path;
    // v1 writes the pid to cgroup.procs (the whole process) and each thread
    // to tasks; v2 the pid to cgroup.procs.
    EXPECT_NE(read_file(group / "cgroup.procs").find("4242"), std::string::npos);
    if (GetParam() == CgroupVersion::v1) {
        for (const char* tid : {"4242", "4243", "4244"})
            EXPECT_NE(read_file(group / "tasks").find(tid), std::string::npos) << tid;
    }
    write_file(group / "tasks", "");
    write_file(group / "cgroup.procs", "");
}

TEST_P(CgroupsTest, NoCgroupRecordMeansNothingIsTouched) {
    RunState s = state_of(1);
    create_cgroup(s.partitions[0], *host.controller);
    move_into_cgroup(s.partitions[0], 1, *host.controller);
    EXPECT_FALSE(fs::exists(host.root / "partlink"));
}

TEST_P(CgroupsTest, RemoveRunGroupsFromTheState) {
    RunState s = state_of(2);
    plan_cgroups(s, *host.controller, 2.0);
    create_cgroups(s, *host.controller);
    std::vector<std::string> errors;
    auto removed = remove_run_cgroups(s.run_dir, s, *host.controller, errors);
    EXPECT_TRUE(errors.empty()) << errors.front();
    EXPECT_EQ(removed.size(), 3u);
    EXPECT_FALSE(fs::exists(*s.cgroup_run));
    EXPECT_TRUE(fs::is_directory(host.root / "partlink")) << "shared with other runs";
}

TEST_P(CgroupsTest, RemoveRunGroupsWithoutStateScansTheRunGroup) {
    RunState s = state_of(2);
    plan_cgroups(s, *host.controller, 2.0);
    create_cgroups(s, *host.controller);
    // Another run's groups stay.
    RunState other = state_of(1, "/tmp/other-run");
    plan_cgroups(other, *host.controller, 2.0);
    create_cgroups(other, *host.controller);
    std::vector<std::string> errors;
    auto removed = remove_run_cgroups(s.run_dir, std::nullopt, *host.controller, errors);
    EXPECT_TRUE(errors.empty());
    EXPECT_EQ(removed.size(), 3u);
    EXPECT_FALSE(fs::exists(*s.cgroup_run));
    EXPECT_TRUE(fs::is_directory(other.partitions[0].cgroup->path));
}

TEST_P(CgroupsTest, RemoveReportsFailuresWithoutThrowing) {
    RunState s = state_of(1);
    plan_cgroups(s, *host.controller, 2.0);
    create_cgroups(s, *host.controller);
    const auto& group = s.partitions[0].cgroup->path;
    host.controller->create_group(group.lexically_relative(host.root) / "child");
    std::vector<std::string> errors;
    const auto started = std::chrono::steady_clock::now();
    remove_run_cgroups(s.run_dir, s, *host.controller, errors, std::chrono::milliseconds(300));
    EXPECT_FALSE(errors.empty());
    // Retried for the grace, per group, not forever.
    EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(300));
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
    EXPECT_TRUE(
        capacity::remove_group_patiently(host.root / "partlink/none", *host.controller).empty());
}

TEST_P(CgroupsTest, StatusShowsEntitlementCapAndStat) {
    RunState s = state_of(2);
    plan_cgroups(s, *host.controller, 2.0);
    create_cgroups(s, *host.controller);
    const auto& group = s.partitions[0].cgroup->path;
    if (GetParam() == CgroupVersion::v1) {
        write_file(group / "cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 2000000\n");
        write_file(group / "cpuacct.usage", "3000000000\n");
    } else {
        write_file(group / "cpu.stat", "usage_usec 3000000\nnr_periods 10\nnr_throttled 4\n"
                                       "throttled_usec 2000\n");
    }
    CapacityStatus c = capacity_status(*s.partitions[0].cgroup, host.controller.get());
    EXPECT_TRUE(c.exists);
    EXPECT_TRUE(c.error.empty()) << c.error;
    EXPECT_DOUBLE_EQ(c.entitlement_cpus, 1.0);
    ASSERT_TRUE(c.cap && c.stat);
    EXPECT_EQ(*c.cap, capacity::CpuCap::from_cpus(1.0));
    EXPECT_EQ(c.stat->nr_periods, 10u);
    EXPECT_EQ(c.stat->nr_throttled, 4u);
    EXPECT_EQ(c.stat->throttled, std::chrono::microseconds(2000));
    ASSERT_TRUE(c.stat->usage);
    EXPECT_EQ(*c.stat->usage, std::chrono::seconds(3));

    fs::remove_all(s.partitions[1].cgroup->path);
    CapacityStatus gone = capacity_status(*s.partitions[1].cgroup, host.controller.get());
    EXPECT_FALSE(gone.exists);
    EXPECT_FALSE(gone.cap);
}

INSTANTIATE_TEST_SUITE_P(Versions, CgroupsTest,
                         ::testing::Values(CgroupVersion::v1, CgroupVersion::v2),
                         [](const auto& info) {
                             return info.param == CgroupVersion::v1 ? "v1" : "v2";
                         });

TEST(CgroupState, RoundTripsAndReadsDocumentsWithoutCgroups) {
    RunState s = state_of(1);
    s.created = "2026-01-01T00:00:00Z";
    s.settings.mem_mib = 512;
    s.settings.cpus = 1;
    s.settings.timeout_seconds = 180;
    s.cgroup_run = "/sys/fs/cgroup/cpu/partlink/abc123";
    s.partitions[0].cgroup = CgroupRecord{*s.cgroup_run / "vm1", 150'000, 200};
    RunState back = parse_state(serialize_state(s));
    ASSERT_TRUE(back.cgroup_run && back.partitions[0].cgroup);
    EXPECT_EQ(*back.cgroup_run, *s.cgroup_run);
    EXPECT_EQ(back.partitions[0].cgroup->path, *s.cgroup_run / "vm1");
    EXPECT_EQ(back.partitions[0].cgroup->entitlement_units, 150'000);
    EXPECT_EQ(back.partitions[0].cgroup->weight, 200u);

    auto doc = nlohmann::json::parse(serialize_state(s));
    doc.erase("cgroup_run");
    doc["partitions"][0].erase("cgroup");
    RunState old = parse_state(doc.dump());
    EXPECT_FALSE(old.cgroup_run);
    EXPECT_FALSE(old.partitions[0].cgroup);
}

TEST(CgroupState, PolicyBoundsRoundTripAndAreOptional) {
    RunState s = state_of(1);
    s.created = "2026-01-01T00:00:00Z";
    s.settings.mem_mib = 512;
    s.settings.cpus = 1;
    s.settings.timeout_seconds = 180;
    s.cgroup_run = "/sys/fs/cgroup/partlink/abc123";
    s.partitions[0].cgroup = CgroupRecord{*s.cgroup_run / "vm1", 50'000, 100, 20'000, 100'000};
    RunState back = parse_state(serialize_state(s));
    EXPECT_EQ(back.partitions[0].cgroup->min_units, 20'000);
    EXPECT_EQ(back.partitions[0].cgroup->max_units, 100'000);

    // A document of the release before policy files: no bounds, none shown.
    auto doc = nlohmann::json::parse(serialize_state(s));
    doc["partitions"][0]["cgroup"].erase("min_units");
    doc["partitions"][0]["cgroup"].erase("max_units");
    RunState old = parse_state(doc.dump());
    EXPECT_EQ(old.partitions[0].cgroup->min_units, 0);
    EXPECT_EQ(old.partitions[0].cgroup->max_units, 0);
    CapacityStatus c = capacity_status(*old.partitions[0].cgroup, nullptr);
    EXPECT_FALSE(c.min_cpus);
    EXPECT_FALSE(c.max_cpus);
    doc["partitions"][0]["cgroup"]["min_units"] = "a lot";
    EXPECT_THROW(parse_state(doc.dump()), StateCorrupt);
}

} // namespace
} // namespace partlink
