// partlinkd's side of a guest's balloon: the QMP commands it sends and what
// it makes of QEMU's replies.
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_qemu.hpp"
#include "qmp_balloon.hpp"

namespace partlink::daemon {
namespace {

using nlohmann::json;
using partlink::testing::FakeQemu;
using partlink::testing::kQmpGreeting;
using ::testing::HasSubstr;

TEST(QmpBalloon, SetsTheTargetInBytesAndReadsTheActualSize) {
    FakeQemu qemu;
    std::thread server([&] {
        qemu.send(kQmpGreeting);
        EXPECT_EQ(qemu.receive()["execute"], "qmp_capabilities");
        qemu.send({{"return", json::object()}});
        const json set = qemu.receive();
        EXPECT_EQ(set["execute"], "balloon");
        EXPECT_EQ(set["arguments"]["value"], 402653184u);
        qemu.send({{"return", json::object()}});
        EXPECT_EQ(qemu.receive()["execute"], "query-balloon");
        qemu.send({{"event", "BALLOON_CHANGE"}, {"data", {{"actual", 4096}}}});
        qemu.send({{"return", {{"actual", 402653184u}}}});
        EXPECT_EQ(qemu.receive()["execute"], "query-balloon");
        qemu.send({{"return", {{"actual", "lots"}}}});
        EXPECT_EQ(qemu.receive()["execute"], "balloon");
        qemu.send(
            {{"error",
              {{"class", "DeviceNotActive"}, {"desc", "No balloon device has been activated"}}}});
    });
    QmpBalloon balloon(QmpClient::from_fd(qemu.take_client()));
    balloon.set_target(384 * capacity::kMib);
    EXPECT_EQ(balloon.actual(), 384 * capacity::kMib);
    EXPECT_THROW(balloon.actual(), QmpError);
    try {
        balloon.set_target(1);
        ADD_FAILURE() << "an error reply was taken for success";
    } catch (const QmpError& e) {
        EXPECT_THAT(e.what(), HasSubstr("No balloon device has been activated"));
    }
    server.join();
}

TEST(QmpBalloon, TheOpenerKnowsOnlyTheConfiguredPartitions) {
    const auto open = qmp_balloon_opener({{"vm2", {"/nonexistent/partlink/vm2.hv.qmp", 512}}},
                                         std::chrono::milliseconds(200));
    try {
        open("vm3");
        ADD_FAILURE() << "opened a balloon that is not configured";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("vm3 has no balloon"));
    }
    try {
        open("vm2");
        ADD_FAILURE() << "connected to a socket that does not exist";
    } catch (const QmpError& e) {
        EXPECT_THAT(e.what(), HasSubstr("/nonexistent/partlink/vm2.hv.qmp"));
    }
}

} // namespace
} // namespace partlink::daemon
