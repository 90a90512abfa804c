// The broker's part in shared segments, without sockets: SEGMENT only to the
// partitions a segment lists, read-only fds to read-only ones, SEG_PEER both
// ways between sharers (across networks too), PEER_DOWN to sharers when one
// goes, and what a reloaded table changes.
#include <fcntl.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "broker.hpp"
#include "fake_device.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;

namespace {

template <typename T>
T payload(const Outgoing& out) {
    return payload_of<T>(out.message);
}

ino_t inode(int fd) {
    struct stat st {};
    ::fstat(fd, &st);
    return st.st_ino;
}

std::vector<Outgoing> of_type(const std::vector<Outgoing>& out, std::uint32_t type) {
    std::vector<Outgoing> found;
    for (const auto& o : out)
        if (o.message.type == type)
            found.push_back(o);
    return found;
}

segments::Table table(const std::string& text) {
    return segments::Table::parse(text, "segments.json", std::nullopt);
}

constexpr std::uint64_t kLimit = std::uint64_t{1} << 30;

class BrokerSegmentsTest : public ::testing::Test {
protected:
    TempDir dir;
    Segment segment = Segment::open_or_create(dir / "fabric");
    segments::Store store;
    const pid_t me = ::getpid();

    std::unique_ptr<Broker> make_broker(Config config = {}) {
        return std::make_unique<Broker>(
            segment, std::move(config), [](const std::string&) {}, &store);
    }
};

TEST_F(BrokerSegmentsTest, OnlyListedPartitionsGetTheMemfdReadOnlyOnesReadOnly) {
    store.apply(table(R"({"segments": [
        {"name": "pipe0", "size": "64K", "partitions": {
            "vm1": {"uid": 1000, "gid": 100, "mode": "0640"},
            "vm2": {"access": "ro"}}}]})"),
                kLimit);
    auto broker = make_broker();
    FakeDevice a(0, "vm1"), b(1, "vm2"), c(2, "vm3");

    auto out = broker->hello(1, me, check_hello(a.received_hello()));
    auto segs = of_type(out, PARTLINK_MSG_SEGMENT);
    ASSERT_EQ(segs.size(), 1u);
    auto m = payload<partlink_msg_segment>(segs[0]);
    EXPECT_STREQ(m.name, "pipe0");
    EXPECT_EQ(m.size, 65536u);
    EXPECT_EQ(m.uid, 1000u);
    EXPECT_EQ(m.gid, 100u);
    EXPECT_EQ(m.mode, 0640u);
    EXPECT_EQ(m.flags, 0u);
    ASSERT_EQ(segs[0].message.fds.size(), 1u);
    EXPECT_EQ(::fcntl(segs[0].message.fds[0], F_GETFL) & O_ACCMODE, O_RDWR);

    out = broker->hello(2, me, check_hello(b.received_hello()));
    segs = of_type(out, PARTLINK_MSG_SEGMENT);
    ASSERT_EQ(segs.size(), 1u);
    EXPECT_EQ(payload<partlink_msg_segment>(segs[0]).flags,
              static_cast<std::uint32_t>(PARTLINK_SEG_READ_ONLY));
    EXPECT_EQ(::fcntl(segs[0].message.fds[0], F_GETFL) & O_ACCMODE, O_RDONLY);

    // SEG_PEER both ways, with each other's doorbell.
    auto peers = of_type(out, PARTLINK_MSG_SEG_PEER);
    ASSERT_EQ(peers.size(), 2u);
    EXPECT_EQ(peers[0].to, 2u);
    EXPECT_EQ(payload<partlink_msg_seg_peer>(peers[0]).port, 0u);
    EXPECT_EQ(payload<partlink_msg_seg_peer>(peers[0]).shared, 1u << m.id);
    EXPECT_EQ(inode(peers[0].message.fds[0]), inode(a.doorbell.get()));
    EXPECT_EQ(peers[1].to, 1u);
    EXPECT_EQ(payload<partlink_msg_seg_peer>(peers[1]).port, 1u);
    EXPECT_EQ(inode(peers[1].message.fds[0]), inode(b.doorbell.get()));

    // vm3 is not listed: no memfd, no SEG_PEER.
    out = broker->hello(3, me, check_hello(c.received_hello()));
    EXPECT_TRUE(of_type(out, PARTLINK_MSG_SEGMENT).empty());
    EXPECT_TRUE(of_type(out, PARTLINK_MSG_SEG_PEER).empty());
    EXPECT_EQ(broker->holders(m.id), (std::vector<std::string>{"vm1", "vm2"}));
}

TEST_F(BrokerSegmentsTest, SharersInOtherNetworksCanRingAndHearOfTheEnd) {
    store.apply(table(R"({"segments": [
        {"name": "bridge", "size": 4096, "partitions": {"vm1": {}, "vm3": {}}}]})"),
                kLimit);
    auto broker =
        make_broker(Config::parse(R"({"networks": {"a": ["vm1"], "b": ["vm3"]}})", "fabric.json"));
    FakeDevice a(0, "vm1"), c(2, "vm3");
    broker->hello(1, me, check_hello(a.received_hello()));
    auto out = broker->hello(3, me, check_hello(c.received_hello()));
    EXPECT_TRUE(of_type(out, PARTLINK_MSG_PEER_UP).empty()); // no packets across
    EXPECT_EQ(of_type(out, PARTLINK_MSG_SEG_PEER).size(), 2u);

    out = broker->disconnect(3);
    auto downs = of_type(out, PARTLINK_MSG_PEER_DOWN);
    ASSERT_EQ(downs.size(), 1u);
    EXPECT_EQ(downs[0].to, 1u);
    EXPECT_EQ(payload<partlink_msg_peer_down>(downs[0]).port, 2u);
}

TEST_F(BrokerSegmentsTest, AReloadAddsRevokesAndRetellsSharers) {
    store.apply(table(R"({"segments": [
        {"name": "old", "size": 4096, "partitions": {"vm1": {}, "vm2": {}}}]})"),
                kLimit);
    auto broker = make_broker();
    FakeDevice a(0, "vm1"), b(1, "vm2");
    broker->hello(1, me, check_hello(a.received_hello()));
    broker->hello(2, me, check_hello(b.received_hello()));
    const auto old_id = *store.id_of("old");

    auto applied = store.apply(table(R"({"segments": [
        {"name": "new", "size": 8192, "partitions": {"vm1": {}, "vm2": {"mode": "0666"}}}]})"),
                               kLimit);
    auto out = broker->segments_changed(applied);
    const auto new_id = *store.id_of("new");
    auto gone = of_type(out, PARTLINK_MSG_SEGMENT_GONE);
    ASSERT_EQ(gone.size(), 2u);
    EXPECT_EQ(payload<partlink_msg_segment_gone>(gone[0]).id, old_id);
    auto added = of_type(out, PARTLINK_MSG_SEGMENT);
    ASSERT_EQ(added.size(), 2u);
    EXPECT_EQ(payload<partlink_msg_segment>(added[1]).mode, 0666u);
    auto peers = of_type(out, PARTLINK_MSG_SEG_PEER);
    ASSERT_EQ(peers.size(), 2u);
    EXPECT_EQ(payload<partlink_msg_seg_peer>(peers[0]).shared, std::uint64_t{1} << new_id);

    // Revoking vm2 tells both that they share nothing any more.
    applied = store.apply(table(R"({"segments": [
        {"name": "new", "size": 8192, "partitions": {"vm1": {}}}]})"),
                          kLimit);
    out = broker->segments_changed(applied);
    gone = of_type(out, PARTLINK_MSG_SEGMENT_GONE);
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].to, 2u);
    peers = of_type(out, PARTLINK_MSG_SEG_PEER);
    ASSERT_EQ(peers.size(), 2u);
    for (const auto& p : peers) {
        EXPECT_EQ(payload<partlink_msg_seg_peer>(p).shared, 0u);
        EXPECT_TRUE(p.message.fds.empty());
    }
    EXPECT_EQ(broker->holders(new_id), (std::vector<std::string>{"vm1"}));
}

} // namespace
