#include <thread>

#include <gtest/gtest.h>

#include "fake_qemu.hpp"
#include "qmp.hpp"

using namespace partlink;
using nlohmann::json;
using partlink::testing::FakeQemu;

using partlink::testing::kQmpGreeting;

TEST(Qmp, HandshakeStatusAndEvents) {
    FakeQemu qemu;
    std::thread server([&] {
        qemu.send(kQmpGreeting);
        EXPECT_EQ(qemu.receive()["execute"], "qmp_capabilities");
        qemu.send({{"return", json::object()}});
        EXPECT_EQ(qemu.receive()["execute"], "query-status");
        qemu.send({{"event", "RESUME"}, {"timestamp", {}}});
        qemu.send({{"return", {{"status", "running"}, {"running", true}}}});
    });
    QmpClient client = QmpClient::from_fd(qemu.take_client());
    EXPECT_EQ(client.query_status(), "running");
    server.join();
}

TEST(Qmp, ErrorReplyBecomesQmpError) {
    FakeQemu qemu;
    std::thread server([&] {
        qemu.send(kQmpGreeting);
        qemu.receive();
        qemu.send({{"return", json::object()}});
        qemu.receive();
        qemu.send({{"error", {{"class", "CommandNotFound"}, {"desc", "no such command"}}}});
    });
    QmpClient client = QmpClient::from_fd(qemu.take_client());
    try {
        client.execute("bogus");
        FAIL();
    } catch (const QmpError& e) {
        EXPECT_STREQ(e.what(), "QMP bogus failed: no such command");
    }
    server.join();
}

TEST(Qmp, QuitSucceedsWhenQemuHangsUp) {
    FakeQemu qemu;
    std::thread server([&] {
        qemu.send(kQmpGreeting);
        qemu.receive();
        qemu.send({{"return", json::object()}});
        EXPECT_EQ(qemu.receive()["execute"], "quit");
        qemu.hang_up();
    });
    QmpClient client = QmpClient::from_fd(qemu.take_client());
    EXPECT_NO_THROW(client.quit());
    server.join();
}

TEST(Qmp, SilentPeerTimesOut) {
    FakeQemu qemu;
    auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(QmpClient::from_fd(qemu.take_client(), std::chrono::milliseconds(200)), QmpError);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(Qmp, BadGreeting) {
    FakeQemu qemu;
    qemu.send({{"hello", 1}});
    EXPECT_THROW(QmpClient::from_fd(qemu.take_client()), QmpError);
}

TEST(Qmp, NoSocket) {
    EXPECT_THROW(QmpClient::connect("/nonexistent/partlink/vm1.qmp"), QmpError);
}
