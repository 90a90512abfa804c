// The registration table, without sockets: WELCOME, PEER_UP both ways,
// network isolation, refusals, PEER_DOWN, re-registration after a restart.
#include <sys/stat.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "broker.hpp"
#include "fake_device.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;
using ::testing::HasSubstr;

namespace {

ino_t inode(int fd) {
    struct stat st {};
    ::fstat(fd, &st);
    return st.st_ino;
}

Hello hello_of(const FakeDevice& dev) {
    return check_hello(dev.received_hello());
}

template <typename T>
T payload(const Outgoing& out) {
    return payload_of<T>(out.message);
}

std::string reason_of(const std::vector<Outgoing>& out) {
    if (out.size() != 1 || out[0].message.type != PARTLINK_MSG_REFUSE || !out[0].close_after)
        return "not a refusal";
    return payload<partlink_msg_refuse>(out[0]).reason;
}

pid_t dead_pid() {
    pid_t pid = ::fork();
    if (pid == 0)
        ::_exit(0);
    ::waitpid(pid, nullptr, 0);
    return pid;
}

class BrokerTest : public ::testing::Test {
protected:
    TempDir dir;
    Segment segment = Segment::open_or_create(dir / "fabric");
    std::vector<std::string> log;
    const pid_t me = ::getpid();

    std::unique_ptr<Broker> make_broker(Config config = {}) {
        return std::make_unique<Broker>(segment, std::move(config),
                                        [this](const std::string& line) { log.push_back(line); });
    }
};

TEST_F(BrokerTest, WelcomesTheFirstDeviceAndWritesItsSlot) {
    auto broker = make_broker();
    FakeDevice dev(2, "vm3");
    auto out = broker->hello(10, me, hello_of(dev));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].to, 10u);
    ASSERT_EQ(out[0].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_WELCOME));
    auto welcome = payload<partlink_msg_welcome>(out[0]);
    EXPECT_EQ(welcome.port, 2u);
    EXPECT_EQ(welcome.epoch, 1u);
    EXPECT_EQ(welcome.network, 1u);
    EXPECT_EQ(welcome.flags, 0u);
    ASSERT_EQ(out[0].message.fds.size(), 1u);
    EXPECT_EQ(out[0].message.fds[0], segment.fd());

    const auto& slot = segment.port(2);
    EXPECT_EQ(slot.state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(slot.epoch, 1u);
    EXPECT_EQ(slot.network, 1u);
    EXPECT_EQ(slot.pid, me);
    EXPECT_EQ(port_name(slot), "vm3");
    EXPECT_EQ(std::memcmp(slot.mac, dev.msg.mac, 6), 0);
    EXPECT_EQ(broker->port_of(10), 2u);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0],
              "vm3 (port 2, pid " + std::to_string(me) + ") up (epoch 1) in network 1, 0 peers");
}

TEST_F(BrokerTest, AnnouncesPeersBothWaysWithTheirFds) {
    auto broker = make_broker();
    FakeDevice a(0, "vm1"), b(1, "vm2");
    broker->hello(1, me, hello_of(a));
    auto out = broker->hello(2, me, hello_of(b));
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_WELCOME));

    // A -> newcomer B
    EXPECT_EQ(out[1].to, 2u);
    ASSERT_EQ(out[1].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_PEER_UP));
    auto about_a = payload<partlink_msg_port>(out[1]);
    EXPECT_EQ(about_a.port, 0u);
    EXPECT_EQ(about_a.epoch, 1u);
    EXPECT_STREQ(about_a.name, "vm1");
    ASSERT_EQ(out[1].message.fds.size(), 2u);
    EXPECT_EQ(inode(out[1].message.fds[0]), inode(a.doorbell.get()));
    EXPECT_EQ(inode(out[1].message.fds[1]), inode(a.ram.get()));

    // B -> A
    EXPECT_EQ(out[2].to, 1u);
    auto about_b = payload<partlink_msg_port>(out[2]);
    EXPECT_EQ(about_b.port, 1u);
    EXPECT_EQ(about_b.epoch, 1u);
    EXPECT_EQ(inode(out[2].message.fds[1]), inode(b.ram.get()));
    EXPECT_THAT(log.back(), HasSubstr("in network 1, 1 peer"));
}

TEST_F(BrokerTest, KeepsNetworksApart) {
    auto broker = make_broker(Config::parse(
        R"({"networks": {"blue": ["vm1", "vm2"], "red": ["vm3"]}, "wlm": "vm1"})", "t"));
    FakeDevice a(0, "vm1"), b(1, "vm2"), c(2, "vm3"), d(3, "vm4");
    auto out_a = broker->hello(1, me, hello_of(a));
    EXPECT_EQ(payload<partlink_msg_welcome>(out_a[0]).flags,
              static_cast<std::uint32_t>(PARTLINK_PORT_WLM));
    EXPECT_EQ(segment.port(0).flags, static_cast<std::uint32_t>(PARTLINK_PORT_WLM));
    EXPECT_THAT(log.back(), HasSubstr("in network blue, 0 peers, WLM"));

    auto out_c = broker->hello(3, me, hello_of(c));
    ASSERT_EQ(out_c.size(), 1u) << "red has nobody else";
    EXPECT_EQ(payload<partlink_msg_welcome>(out_c[0]).network, 2u);
    EXPECT_EQ(payload<partlink_msg_welcome>(out_c[0]).flags, 0u);

    auto out_b = broker->hello(2, me, hello_of(b));
    ASSERT_EQ(out_b.size(), 3u);
    for (const auto& o : out_b)
        EXPECT_NE(o.to, 3u) << "vm3 heard about vm2";

    EXPECT_EQ(reason_of(broker->hello(4, me, hello_of(d))),
              "vm4 is in no network of the configuration");
    EXPECT_EQ(segment.port(3).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));

    // vm1 leaving tells vm2 only.
    auto down = broker->disconnect(1);
    ASSERT_EQ(down.size(), 1u);
    EXPECT_EQ(down[0].to, 2u);
}

TEST_F(BrokerTest, RefusesATakenPortMacOrName) {
    auto broker = make_broker();
    FakeDevice a(1, "vm2");
    broker->hello(1, me, hello_of(a));

    FakeDevice same_port(1, "vm9");
    EXPECT_EQ(reason_of(broker->hello(2, me, hello_of(same_port))),
              "port 1 is taken by vm2 (pid " + std::to_string(me) + ")");
    EXPECT_THAT(log.back(), HasSubstr("refused vm9 (port 1, pid"));

    FakeDevice same_mac(5, "vm6");
    std::memcpy(same_mac.msg.mac, a.msg.mac, 6);
    EXPECT_EQ(reason_of(broker->hello(3, me, hello_of(same_mac))),
              "MAC 52:54:00:00:00:02 is already used by vm2 (port 1)");

    FakeDevice same_name(6, "vm2");
    EXPECT_THAT(reason_of(broker->hello(4, me, hello_of(same_name))),
                HasSubstr("name vm2 is already used by port 1"));

    EXPECT_EQ(segment.port(1).pid, me);
    EXPECT_EQ(segment.port(1).epoch, 1u);
    EXPECT_EQ(segment.port(5).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
}

TEST_F(BrokerTest, RefusesASecondHelloOnOneConnection) {
    auto broker = make_broker();
    FakeDevice a(1, "vm2"), b(2, "vm3");
    broker->hello(1, me, hello_of(a));
    EXPECT_EQ(reason_of(broker->hello(1, me, hello_of(b))),
              "this connection is already registered as port 1");
}

TEST_F(BrokerTest, DisconnectFreesTheSlotAndTellsThePeers) {
    auto broker = make_broker();
    FakeDevice a(0, "vm1"), b(1, "vm2"), c(2, "vm3");
    broker->hello(1, me, hello_of(a));
    broker->hello(2, me, hello_of(b));
    broker->hello(3, me, hello_of(c));
    segment.port_rw(1).rx_ready = 1;
    segment.port_rw(1).counters[PARTLINK_CTR_RX_PACKETS] = 7;

    auto out = broker->disconnect(2);
    ASSERT_EQ(out.size(), 2u);
    for (const auto& o : out) {
        EXPECT_TRUE(o.to == 1 || o.to == 3);
        ASSERT_EQ(o.message.type, static_cast<std::uint32_t>(PARTLINK_MSG_PEER_DOWN));
        auto down = payload<partlink_msg_peer_down>(o);
        EXPECT_EQ(down.port, 1u);
        EXPECT_EQ(down.epoch, 1u) << "the epoch that went down";
    }
    const auto& slot = segment.port(1);
    EXPECT_EQ(slot.state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    EXPECT_EQ(slot.epoch, 2u);
    EXPECT_EQ(slot.rx_ready, 0u);
    EXPECT_EQ(slot.counters[PARTLINK_CTR_RX_PACKETS], 7u);
    EXPECT_EQ(broker->port_of(2), std::nullopt);
    EXPECT_THAT(log.back(), HasSubstr("vm2 (port 1, pid"));
    EXPECT_THAT(log.back(), HasSubstr("down (epoch 1 -> 2), 2 peers told"));
    EXPECT_TRUE(broker->disconnect(2).empty());
    EXPECT_TRUE(broker->disconnect(99).empty());

    // The port can be taken again, with a new epoch.
    FakeDevice again(1, "vm2");
    auto welcome = broker->hello(4, me, hello_of(again));
    EXPECT_EQ(payload<partlink_msg_welcome>(welcome[0]).epoch, 3u);
}

TEST_F(BrokerTest, ADeviceRegisteringAgainAfterARestartKeepsItsEpoch) {
    FakeDevice a(4, "vm5");
    {
        auto broker = make_broker();
        broker->hello(1, me, hello_of(a));
        broker->hello(2, me, hello_of(FakeDevice(5, "vm6")));
        segment.port_rw(4).rx_ready = 1;
    } // the daemon dies: slots stay
    EXPECT_EQ(segment.port(4).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));

    auto broker = make_broker();
    auto out = broker->hello(7, me, hello_of(a));
    ASSERT_EQ(out.size(), 1u) << "vm6 has not registered again: not connected, not announced";
    EXPECT_EQ(payload<partlink_msg_welcome>(out[0]).epoch, 1u);
    EXPECT_EQ(segment.port(4).epoch, 1u);
    EXPECT_EQ(segment.port(4).rx_ready, 1u) << "its RX ring stays usable";
    EXPECT_THAT(log.back(), HasSubstr("registered again (epoch 1 kept)"));
}

TEST_F(BrokerTest, APortHeldByAnotherLiveProcessIsRefusedADeadOneIsTaken) {
    auto& slot = segment.port_rw(6);
    slot.state = PARTLINK_PORT_UP;
    slot.pid = 1; // init: alive
    slot.epoch = 10;
    std::strcpy(slot.name, "old");
    auto broker = make_broker();
    FakeDevice dev(6, "vm7");
    EXPECT_EQ(reason_of(broker->hello(1, me, hello_of(dev))),
              "port 6 is held by old (pid 1), which has not registered again yet");

    slot.pid = dead_pid();
    auto out = broker->hello(2, me, hello_of(dev));
    ASSERT_EQ(out[0].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_WELCOME));
    EXPECT_EQ(payload<partlink_msg_welcome>(out[0]).epoch, 11u);
    EXPECT_EQ(segment.port(6).pid, me);
}

TEST_F(BrokerTest, AMacOfADeadSlotIsFree) {
    auto& slot = segment.port_rw(9);
    FakeDevice dev(3, "vm4");
    slot.state = PARTLINK_PORT_UP;
    slot.pid = dead_pid();
    std::memcpy(slot.mac, dev.msg.mac, 6);
    auto broker = make_broker();
    auto out = broker->hello(1, me, hello_of(dev));
    EXPECT_EQ(out[0].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_WELCOME));
}

TEST_F(BrokerTest, SweepFreesDeadUnregisteredPortsAndTellsTheNetwork) {
    FakeDevice kept(0, "vm1");
    {
        auto broker = make_broker();
        broker->hello(1, me, hello_of(kept));
    } // restart
    auto& dead = segment.port_rw(7);
    dead.state = PARTLINK_PORT_UP;
    dead.pid = dead_pid();
    dead.epoch = 3;
    dead.network = 1;
    std::strcpy(dead.name, "vm8");
    auto& elsewhere = segment.port_rw(8);
    elsewhere.state = PARTLINK_PORT_UP;
    elsewhere.pid = dead.pid;
    elsewhere.epoch = 5;
    elsewhere.network = 2;

    auto broker = make_broker();
    FakeDevice fresh(1, "vm2");
    broker->hello(2, me, hello_of(fresh));
    auto out = broker->sweep();
    // vm2 (network 1) hears about port 7; nobody is in network 2.
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].to, 2u);
    auto down = payload<partlink_msg_peer_down>(out[0]);
    EXPECT_EQ(down.port, 7u);
    EXPECT_EQ(down.epoch, 3u);
    EXPECT_EQ(segment.port(7).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    EXPECT_EQ(segment.port(7).epoch, 4u);
    EXPECT_EQ(segment.port(8).epoch, 6u);
    EXPECT_THAT(log[log.size() - 2], HasSubstr("vm8 (port 7, pid"));
    EXPECT_THAT(log[log.size() - 2], HasSubstr("is gone: port freed (epoch 3 -> 4), 1 peer told"));
    EXPECT_TRUE(broker->sweep().empty()) << "cleaned once";

    // vm1 registers again: it may still map port 7, so it is told too.
    auto again = broker->hello(3, me, hello_of(kept));
    ASSERT_EQ(again.size(), 4u); // WELCOME, PEER_UP(vm2) both ways, PEER_DOWN(7)
    EXPECT_EQ(again[3].to, 3u);
    ASSERT_EQ(again[3].message.type, static_cast<std::uint32_t>(PARTLINK_MSG_PEER_DOWN));
    EXPECT_EQ(payload<partlink_msg_peer_down>(again[3]).port, 7u);
    // A newcomer knows nobody: no PEER_DOWN.
    FakeDevice newcomer(2, "vm3");
    for (const auto& o : broker->hello(4, me, hello_of(newcomer)))
        EXPECT_NE(o.message.type, static_cast<std::uint32_t>(PARTLINK_MSG_PEER_DOWN));
}

TEST_F(BrokerTest, ARefusalIsLoggedAndClosesTheConnection) {
    auto broker = make_broker();
    auto out = broker->refuse(5, "a device (pid 1)", "HELLO: bad");
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(out[0].close_after);
    EXPECT_EQ(reason_of(out), "HELLO: bad");
    EXPECT_EQ(log.back(), "refused a device (pid 1): HELLO: bad");
}

} // namespace
