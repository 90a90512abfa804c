#include <filesystem>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>

#include "hv_client.hpp"

namespace plwlm {
namespace {

ChartReport named(const std::string& target) {
    ChartReport r;
    r.target = target;
    return r;
}

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

TEST(Outcomes, AcceptedOnlyWhenDone) {
    EXPECT_TRUE(accepted({Outcome::applied, "", 1}));
    EXPECT_TRUE(accepted({Outcome::clamped, "max", 1}));
    EXPECT_TRUE(accepted({Outcome::dry_run, "", 1}));
    EXPECT_FALSE(accepted({Outcome::refused, "not privileged", 0}));
    EXPECT_FALSE(accepted({Outcome::failed, "cgroup write failed", 0}));
    EXPECT_FALSE(accepted({Outcome::unavailable, "", 0}));
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
        EXPECT_NE(what.find("not found: load partlink.ko (it provides the hypervisor mailbox)"),
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

TEST(Device, ANodeThatIsNotTheMailboxFailsClearly) {
    // /dev/null opens but refuses the ioctl (ENOTTY).
    DeviceChannel channel("/dev/null");
    for (int i = 0; i < 3; ++i) {
        try {
            if (i == 0)
                channel.send({"vm2", 1.0, {}});
            else if (i == 1)
                channel.send_memory({"vm2", 512});
            else
                channel.report(named("vm2"));
            FAIL();
        } catch (const UsageError&) {
            FAIL() << "not a usage error";
        } catch (const Error& e) {
            EXPECT_EQ(e.exit_code(), kExitUnavailable);
            EXPECT_NE(std::string(e.what()).find("/dev/null is not a partlink mailbox"),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(Device, RequestsTheMailboxCannotCarryFailBeforeTheIoctl) {
    DeviceChannel channel("/dev/null");
    EXPECT_THROW(channel.send({"a-name-of-17-char", 1.0, {}}), UsageError);
    EXPECT_THROW(channel.send({"vm2", 0.0, {}}), UsageError);
    EXPECT_THROW(channel.send_memory({"vm2", 0}), UsageError);
    EXPECT_THROW(channel.report(named("a-name-of-17-char")), UsageError);
}

TEST(DryRun, MemoryAndReports) {
    std::ostringstream log;
    DryRunChannel channel(&log);
    const auto answer = channel.send_memory({"vm3", 512});
    EXPECT_EQ(answer.outcome, Outcome::dry_run);
    EXPECT_DOUBLE_EQ(answer.value, 512);
    EXPECT_NE(log.str().find("vm3 to 512 MiB"), std::string::npos) << log.str();
    EXPECT_THROW(channel.send_memory({"vm3", -1}), UsageError);
    EXPECT_THROW(channel.send_memory({"vm3", kMaxDirectiveMib + 1}), UsageError);
    log.str("");
    EXPECT_EQ(channel.report(named("vm3")).outcome, Outcome::dry_run);
    EXPECT_EQ(log.str(), "");
}

TEST(Channel, ChannelsWithoutMemoryOrReportsSaySo) {
    class OnlyCpu final : public HypervisorChannel {
    public:
        Answer send(const Directive& d) override { return {Outcome::applied, "", d.cpu}; }
        std::string_view name() const noexcept override { return "only-cpu"; }
    } channel;
    try {
        channel.report(named("vm2"));
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.exit_code(), kExitUnavailable);
        EXPECT_EQ(std::string(e.what()), "the only-cpu channel carries no reports");
    }
    EXPECT_THROW(channel.send_memory({"vm2", 1}), Error);
}

} // namespace
} // namespace plwlm
