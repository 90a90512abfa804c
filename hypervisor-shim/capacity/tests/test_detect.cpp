// Mountinfo parsing and detection of the host's CPU controller.
#include <gtest/gtest.h>

#include "cgroup.hpp"
#include "fake_cgroup.hpp"
#include "mountinfo.hpp"

namespace partlink::capacity {
namespace {

using testing::TempDir;
using testing::write_file;

// This development host: hybrid, cpu on v1, a cgroup2 with hugetlb only.
constexpr const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// A systemd host on the unified hierarchy, with optional fields.
constexpr const char* kUnified =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

TEST(Mountinfo, ParsesFieldsAroundOptionalOnes) {
    const auto mounts = parse_mountinfo(kUnified);
    ASSERT_EQ(mounts.size(), 2u);
    EXPECT_EQ(mounts[1].mount_point, "/sys/fs/cgroup");
    EXPECT_EQ(mounts[1].root, "/");
    EXPECT_EQ(mounts[1].fstype, "cgroup2");
    EXPECT_EQ(mounts[1].super_options,
              (std::vector<std::string>{"rw", "nsdelegate", "memory_recursiveprot"}));
}

TEST(Mountinfo, UnescapesOctalAndSkipsMalformedLines) {
    const auto mounts = parse_mountinfo("garbage line\n"
                                        "50 1 0:40 / /mnt/my\\040cgroups rw - cgroup cg rw,cpu\n"
                                        "51 1 0:41 / /x rw no-dash-here\n\n");
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].mount_point, "/mnt/my cgroups");
    EXPECT_EQ(unescape_mount_path("a\\134b\\011c"), "a\\b\tc");
    EXPECT_EQ(unescape_mount_path("trailing\\04"), "trailing\\04");
}

class Detect : public ::testing::Test {
protected:
    std::filesystem::path mountinfo(const std::string& text) {
        write_file(tmp.path() / "mountinfo", text);
        return tmp.path() / "mountinfo";
    }
    TempDir tmp;
};

TEST_F(Detect, HybridHostWithCpuOnV1UsesV1) {
    write_file(tmp.path() / "sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
    const auto found = detect_cpu_hierarchy(mountinfo(kHybrid), tmp.path());
    EXPECT_EQ(found.version, CgroupVersion::v1);
    EXPECT_EQ(found.path, tmp.path() / "sys/fs/cgroup/cpu");
}

TEST_F(Detect, UnifiedHostWithCpuUsesV2) {
    write_file(tmp.path() / "sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
    const auto found = detect_cpu_hierarchy(mountinfo(kUnified), tmp.path());
    EXPECT_EQ(found.version, CgroupVersion::v2);
    EXPECT_EQ(found.path, tmp.path() / "sys/fs/cgroup");
}

TEST_F(Detect, V2WinsWhenItListsCpu) {
    // cpu can be bound to only one hierarchy; if v2 lists it, the v1 mount
    // is stale.
    write_file(tmp.path() / "sys/fs/cgroup/unified/cgroup.controllers", "cpu\n");
    const auto found = detect_cpu_hierarchy(mountinfo(kHybrid), tmp.path());
    EXPECT_EQ(found.version, CgroupVersion::v2);
    EXPECT_EQ(found.path, tmp.path() / "sys/fs/cgroup/unified");
}

TEST_F(Detect, CombinedCpuCpuacctMountIsV1) {
    const auto found = detect_cpu_hierarchy(
        mountinfo("30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"),
        tmp.path());
    EXPECT_EQ(found.version, CgroupVersion::v1);
    EXPECT_EQ(found.path, tmp.path() / "sys/fs/cgroup/cpu,cpuacct");
}

TEST_F(Detect, CpuacctAloneIsNotCpu) {
    write_file(tmp.path() / "sys/fs/cgroup/unified/cgroup.controllers", "hugetlb\n");
    const auto file =
        mountinfo("33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n"
                  "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
    try {
        detect_cpu_hierarchy(file, tmp.path());
        FAIL() << "expected no CPU controller";
    } catch (const CgroupError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("without cpu (controllers: hugetlb)"), std::string::npos) << message;
        EXPECT_NE(message.find("mount -t cgroup"), std::string::npos) << message;
    }
}

TEST_F(Detect, NoCgroupsAtAllSaysWhatToMount) {
    EXPECT_THROW(
        detect_cpu_hierarchy(mountinfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"), tmp.path()),
        CgroupError);
}

TEST_F(Detect, UnreadableMountinfoIsAnError) {
    EXPECT_THROW(detect_cpu_hierarchy(tmp.path() / "missing"), Error);
}

TEST(DetectOnThisHost, FindsAHierarchy) {
    // Whatever this machine has, detection must find it without a fake.
    const auto found = detect_cpu_hierarchy();
    EXPECT_TRUE(std::filesystem::is_directory(found.path)) << found.path;
}

} // namespace
} // namespace partlink::capacity
