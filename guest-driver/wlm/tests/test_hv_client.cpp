#include <filesystem>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>

#include "hv_client.hpp"

namespace plwlm {
namespace {

TEST(DryRun, LogsAndAnswersDryRun) {
    std::ostringstream log;
    DryRunChannel channel(&log);
    const auto answer = channel.send({"vm2", 0.75, std::string("vm3")});
    EXPECT_EQ(answer.outcome, Outcome::dry_run);
    EXPECT_DOUBLE_EQ(answer.value, 0.75);
    EXPECT_TRUE(accepted(answer));
    EXPECT_NE(log.str().find("vm2"), std::string::npos);
    EXPECT_NE(log.str().find("vm3"), std::string::npos);
    EXPECT_EQ(channel.name(), "dry-run");
}

TEST(DryRun, BadDirectivesAreUsageErrors) {
    DryRunChannel channel;
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    EXPECT_THROW(channel.send({"", 1.0, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm 2", 1.0, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", 0.0, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", -1.0, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", nan, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", 1e9, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", 1.0, std::string("vm2")}), UsageError);
}

TEST(Outcomes, AcceptedOnlyWhenNotRefused) {
    EXPECT_TRUE(accepted({Outcome::applied, "", 1}));
    EXPECT_TRUE(accepted({Outcome::clamped, "max", 1}));
    EXPECT_FALSE(accepted({Outcome::refused, "not privileged", 0}));
    EXPECT_EQ(to_string(Outcome::clamped), "clamped");
    EXPECT_EQ(to_string(Outcome::dry_run), "dry-run");
}

TEST(Device, MissingDeviceSaysWhatToLoad) {
    ASSERT_FALSE(std::filesystem::exists("/nonexistent/partlink-hv"));
    try {
        DeviceChannel channel("/nonexistent/partlink-hv");
        FAIL() << "opened a device that does not exist";
    } catch (const Error& e) {
        EXPECT_EQ(e.exit_code(), kExitUnavailable);
        const std::string what = e.what();
        EXPECT_NE(what.find("not found: load partlink.ko with the hypervisor mailbox (issue 3)"),
                  std::string::npos)
            << what;
    }
}

TEST(Device, TheRealPathGivesTheSameErrorWhileTheDriverIsAbsent) {
    if (std::filesystem::exists(kDevicePath))
        GTEST_SKIP() << kDevicePath << " exists here";
    try {
        DeviceChannel channel;
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()).rfind("/dev/partlink-hv not found", 0), 0u) << e.what();
    }
}

TEST(Device, APresentDeviceWithoutProtocolFailsClearly) {
    // Any openable file stands in for the device node.
    DeviceChannel channel("/dev/null");
    try {
        channel.send({"vm2", 1.0, {}});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.exit_code(), kExitUnavailable);
        EXPECT_NE(std::string(e.what()).find("issue 3"), std::string::npos);
    }
}

} // namespace
} // namespace plwlm
