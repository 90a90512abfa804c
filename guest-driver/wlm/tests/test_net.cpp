#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "exit_status.hpp"
#include "net.hpp"

namespace plwlm {
namespace {

TEST(Endpoint, ParsesHostAndPort) {
    const auto e = parse_endpoint("10.77.0.1:7700");
    EXPECT_EQ(e.address, 0x0a4d0001u);
    EXPECT_EQ(e.port, 7700);
    EXPECT_EQ(e.str(), "10.77.0.1:7700");
}

TEST(Endpoint, BadInputsSayWhatIsExpected) {
    for (const char* bad :
         {"", "10.77.0.1", ":7700", "10.77.0.1:", "10.77.0.1:0", "10.77.0.1:65536", "10.77.0.1:77x",
          "manager:7700", "1.2.3:7700", "10.77.0.1:-1", "[::1]:7700"}) {
        try {
            parse_endpoint(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
        }
    }
}

TEST(Listen, PortAloneOrAddressAndPort) {
    EXPECT_EQ(parse_listen("7700").address, 0u);
    EXPECT_EQ(parse_listen("7700").port, 7700);
    EXPECT_EQ(parse_listen("127.0.0.1:0").port, 0);
    EXPECT_EQ(parse_listen("127.0.0.1:0").address, 0x7f000001u);
    EXPECT_THROW(parse_listen("x"), UsageError);
    EXPECT_THROW(parse_listen(":1"), UsageError);
    EXPECT_THROW(parse_listen("70000"), UsageError);
}

TEST(Udp, LoopbackDatagramsAndTruncationIsVisible) {
    const auto server = UdpSocket::bind(parse_listen("127.0.0.1:0"));
    const auto at = server.local();
    ASSERT_NE(at.port, 0);
    EXPECT_FALSE(server.receive(64)); // non-blocking: nothing yet
    const UdpSocket client;
    client.send_to(at, "hello");
    client.send_to(at, std::string(100, 'x'));
    std::optional<UdpSocket::Datagram> d;
    for (int i = 0; i < 100 && !d; ++i) {
        d = server.receive(64);
        if (!d)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_TRUE(d);
    EXPECT_EQ(d->payload, "hello");
    EXPECT_EQ(d->size, 5u);
    const auto big = server.receive(64);
    ASSERT_TRUE(big);
    EXPECT_EQ(big->size, 100u); // the real size, although only 64 bytes were kept
    EXPECT_EQ(big->payload.size(), 64u);
}

TEST(Udp, PortInUseSaysSo) {
    const auto first = UdpSocket::bind(parse_listen("127.0.0.1:0"));
    try {
        UdpSocket::bind(first.local());
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--listen"), std::string::npos) << e.what();
    }
}

} // namespace
} // namespace plwlm
