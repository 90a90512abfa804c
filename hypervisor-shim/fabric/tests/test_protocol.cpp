// Framing and fd passing over a real socketpair: partial reads, fds with the
// first byte, oversized and garbage messages, a non-blocking send queue.
#include <sys/socket.h>
#include <sys/stat.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_device.hpp"
#include "protocol.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;
using ::testing::HasSubstr;

namespace {

struct SocketPair {
    SocketPair() {
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
            throw std::runtime_error("socketpair");
        a.reset(fds[0]);
        b.reset(fds[1]);
    }
    UniqueFd a, b;
};

ino_t inode(int fd) {
    struct stat st {};
    ::fstat(fd, &st);
    return st.st_ino;
}

// Reads from a non-blocking-read of b until a message or an error.
MessageReader::Status read_one(MessageReader& reader, int fd, Received& out) {
    return reader.read(fd, out);
}

TEST(Protocol, RoundTripsAHelloWithItsFds) {
    SocketPair s;
    FakeDevice dev(1, "vm2");
    send_message(s.a.get(), dev.hello());
    Received r = receive_message(s.b.get(), 1000);
    EXPECT_EQ(r.type, static_cast<std::uint32_t>(PARTLINK_MSG_HELLO));
    ASSERT_EQ(r.payload.size(), sizeof(partlink_msg_port));
    ASSERT_EQ(r.fds.size(), 2u);
    EXPECT_EQ(inode(r.fds[1].get()), inode(dev.ram.get()));
    EXPECT_TRUE(::fcntl(r.fds[0].get(), F_GETFD) & FD_CLOEXEC);
}

TEST(Protocol, ReassemblesAMessageWrittenByteByByte) {
    SocketPair s;
    auto msg = make_peer_down(5, 9);
    partlink_msg header{msg.type, static_cast<__u32>(msg.payload.size())};
    std::vector<std::uint8_t> bytes(sizeof(header));
    std::memcpy(bytes.data(), &header, sizeof(header));
    bytes.insert(bytes.end(), msg.payload.begin(), msg.payload.end());
    MessageReader reader;
    Received out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        EXPECT_EQ(read_one(reader, s.b.get(), out), MessageReader::Status::again);
        ASSERT_EQ(::write(s.a.get(), &bytes[i], 1), 1);
    }
    ASSERT_EQ(read_one(reader, s.b.get(), out), MessageReader::Status::message);
    auto down = payload_as<partlink_msg_peer_down>(out);
    EXPECT_EQ(down.port, 5u);
    EXPECT_EQ(down.epoch, 9u);
    EXPECT_EQ(read_one(reader, s.b.get(), out), MessageReader::Status::again);
    s.a.reset();
    EXPECT_EQ(read_one(reader, s.b.get(), out), MessageReader::Status::eof);
}

TEST(Protocol, RefusesAnOversizedMessage) {
    SocketPair s;
    partlink_msg header{PARTLINK_MSG_HELLO, PARTLINK_MSG_MAX_LEN + 1};
    ASSERT_EQ(::write(s.a.get(), &header, sizeof(header)), 8);
    MessageReader reader;
    Received out;
    try {
        reader.read(s.b.get(), out);
        FAIL() << "accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("HELLO of 4097 bytes, at most 4096 allowed"));
    }
}

TEST(Protocol, RefusesEofInsideAMessage) {
    SocketPair s;
    partlink_msg header{PARTLINK_MSG_HELLO, 100};
    ASSERT_EQ(::write(s.a.get(), &header, sizeof(header)), 8);
    ASSERT_EQ(::write(s.a.get(), "abc", 3), 3);
    s.a.reset();
    MessageReader reader;
    Received out;
    try {
        while (reader.read(s.b.get(), out) != MessageReader::Status::eof) {
        }
        FAIL() << "accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("closed in the middle of a message (11 bytes"));
    }
}

TEST(Protocol, RefusesFdsInTheMiddleOfAMessage) {
    SocketPair s;
    partlink_msg header{PARTLINK_MSG_HELLO, 16};
    ASSERT_EQ(::write(s.a.get(), &header, sizeof(header)), 8);
    // Then 16 payload bytes that carry an fd.
    auto fd = make_eventfd();
    std::vector<std::uint8_t> payload(8, 0);
    // send_message writes a header too: build the raw sendmsg by hand.
    iovec iov{payload.data(), payload.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int raw = fd.get();
    std::memcpy(CMSG_DATA(c), &raw, sizeof(int));
    ASSERT_EQ(::sendmsg(s.a.get(), &m, 0), 8);
    MessageReader reader;
    Received out;
    try {
        while (reader.read(s.b.get(), out) == MessageReader::Status::again) {
        }
        FAIL() << "accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("fds arrived in the middle of a message"));
    }
}

TEST(Protocol, RefusesTooManyFds) {
    SocketPair s;
    std::vector<UniqueFd> owned;
    std::vector<int> fds;
    for (int i = 0; i < PARTLINK_MAX_FDS + 1; ++i) {
        owned.push_back(make_eventfd());
        fds.push_back(owned.back().get());
    }
    Message m;
    m.type = PARTLINK_MSG_HELLO;
    m.payload.assign(8, 0);
    // send_message refuses to send so many: write it by hand.
    partlink_msg header{m.type, 8};
    std::vector<std::uint8_t> bytes(16, 0);
    std::memcpy(bytes.data(), &header, sizeof(header));
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    ASSERT_EQ(::sendmsg(s.a.get(), &msg, 0), 16);
    MessageReader reader;
    Received out;
    EXPECT_THROW(reader.read(s.b.get(), out), ProtocolError);
}

TEST(Protocol, RefuseReasonIsCutAndTerminated) {
    std::string long_reason(1000, 'x');
    auto m = make_refuse(long_reason);
    Received r;
    r.type = m.type;
    r.payload = m.payload;
    EXPECT_EQ(refuse_reason(r), std::string(255, 'x'));
}

TEST(Protocol, PayloadAsChecksTheSize) {
    Received r;
    r.type = PARTLINK_MSG_WELCOME;
    r.payload.assign(3, 0);
    EXPECT_THROW(payload_as<partlink_msg_welcome>(r), ProtocolError);
}

TEST(Protocol, OutQueueResumesPartialSendsAndKeepsFdsAlive) {
    SocketPair s;
    int size = 4096;
    ASSERT_EQ(::setsockopt(s.a.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    ASSERT_EQ(::fcntl(s.a.get(), F_SETFL, O_NONBLOCK), 0);
    FakeDevice dev(2, "vm3");
    OutQueue queue;
    constexpr int kMessages = 200;
    {
        // The queue holds its own duplicates: the originals may go.
        auto ram = dup_fd(dev.ram.get());
        auto bell = dup_fd(dev.doorbell.get());
        for (int i = 0; i < kMessages; ++i) {
            auto port = dev.msg;
            port.epoch = static_cast<std::uint32_t>(i);
            queue.push(make_peer_up(port, std::vector<int>{bell.get(), ram.get()}));
        }
    }
    EXPECT_FALSE(queue.flush(s.a.get())) << "a 4 KiB buffer took everything";
    MessageReader reader;
    int received = 0;
    while (received < kMessages) {
        Received out;
        auto status = reader.read(s.b.get(), out);
        if (status == MessageReader::Status::message) {
            auto port = payload_as<partlink_msg_port>(out);
            ASSERT_EQ(port.epoch, static_cast<std::uint32_t>(received));
            ASSERT_EQ(out.fds.size(), 2u);
            ASSERT_EQ(inode(out.fds[1].get()), inode(dev.ram.get()));
            ++received;
        } else {
            ASSERT_EQ(status, MessageReader::Status::again);
            queue.flush(s.a.get());
        }
    }
    EXPECT_TRUE(queue.empty());
}

TEST(Protocol, OutQueueReportsAGonePeer) {
    SocketPair s;
    s.b.reset();
    OutQueue queue;
    queue.push(make_peer_down(1, 1));
    EXPECT_THROW(queue.flush(s.a.get()), Error);
}

} // namespace
