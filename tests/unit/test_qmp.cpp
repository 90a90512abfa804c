#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "qmp.hpp"

using namespace partlink;
using nlohmann::json;

namespace {

// A scripted QMP server on the other end of a socketpair.
class FakeQemu {
public:
    FakeQemu() {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
            throw std::runtime_error("socketpair");
        client_.reset(fds[0]);
        server_.reset(fds[1]);
    }

    UniqueFd take_client() { return std::move(client_); }

    void send(const json& msg) {
        std::string line = msg.dump() + "\r\n";
        ASSERT_EQ(::write(server_.get(), line.data(), line.size()),
                  static_cast<ssize_t>(line.size()));
    }

    json receive() {
        std::string line;
        char c;
        while (::read(server_.get(), &c, 1) == 1 && c != '\n')
            line += c;
        return json::parse(line);
    }

    void hang_up() { server_.reset(); }

private:
    UniqueFd client_;
    UniqueFd server_;
};

const json kGreeting = {{"QMP", {{"version", {}}, {"capabilities", json::array()}}}};

} // namespace

TEST(Qmp, HandshakeStatusAndEvents) {
    FakeQemu qemu;
    std::thread server([&] {
        qemu.send(kGreeting);
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
        qemu.send(kGreeting);
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
        qemu.send(kGreeting);
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
