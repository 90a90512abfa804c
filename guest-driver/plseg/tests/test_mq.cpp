// Message queues: order, sizes 0/1/max, wrap-around, persistence across
// senders, the end marker, both directions, doorbells only for sleepers,
// and a sender killed in the middle of a message.
#include <algorithm>
#include <cstdio>
#include <vector>

#include <gtest/gtest.h>

#include "seg_fixture.hpp"

namespace plseg_test {
namespace {

constexpr size_t kSegSize = 1 << 20;

// Message i: its length, and its bytes (derived from i).
size_t msg_len(uint64_t i, size_t max) {
    switch (i % 7) {
    case 0:
        return 0;
    case 1:
        return 1;
    case 2:
        return max;
    default:
        return static_cast<size_t>((i * 2654435761u) % (max + 1));
    }
}

void msg_fill(uint64_t i, unsigned char* p, size_t n) {
    Stream s(i + 1);
    s.fill(p, n);
}

TEST(Mq, MessagesArriveInOrderWholeAtEverySize) {
    Segment seg(kSegSize);
    Doorbells bells;
    const uint64_t count = 3000; // many times around the ring
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &q))
            return 20;
        size_t max = plmq_max_msg(q);
        std::vector<unsigned char> buf(max + 1), want(max);
        for (uint64_t i = 0; i < count; i++) {
            size_t len = 12345;
            if (plmq_recv(q, buf.data(), buf.size(), &len, 20000) != 0)
                return 21;
            if (len != msg_len(i, max))
                return 22;
            msg_fill(i, want.data(), len);
            if (memcmp(buf.data(), want.data(), len) != 0)
                return 23;
        }
        size_t len;
        if (plmq_recv(q, buf.data(), buf.size(), &len, 20000) != PLMQ_END)
            return 24;
        plmq_close(q);
        return 0;
    });
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q))
            return 10;
        size_t max = plmq_max_msg(q);
        std::vector<unsigned char> buf(max + 1);
        if (plmq_send(q, buf.data(), max + 1, 1000) != -EMSGSIZE)
            return 11;
        for (uint64_t i = 0; i < count; i++) {
            size_t len = msg_len(i, max);
            msg_fill(i, buf.data(), len);
            if (plmq_send(q, buf.data(), len, 20000))
                return 12;
        }
        if (plmq_send_end(q, 20000))
            return 13;
        plmq_close(q);
        return 0;
    });
    EXPECT_EQ(wait_child(w, 60000), 0);
    EXPECT_EQ(wait_child(r, 60000), 0);
}

TEST(Mq, GeometryFollowsTheSegmentSize) {
    Segment seg(kSegSize);
    Doorbells bells;
    Handle h(seg, bells, 1);
    plmq* q = nullptr;
    ASSERT_EQ(plmq_attach(h, 1, PLSEG_READER, nullptr, &q), 0);
    const plseg_header* hd = seg.hdr();
    EXPECT_EQ(hd->id.magic, PLSEG_MAGIC);
    EXPECT_EQ(hd->id.kind, PLSEG_KIND_MQ);
    EXPECT_EQ(hd->id.nqueues, 2u);
    uint64_t ring = (kSegSize - 4096) / 2 / 4096 * 4096;
    EXPECT_EQ(hd->q[0].desc.ring_offset, 4096u);
    EXPECT_EQ(hd->q[1].desc.ring_offset, 4096u + ring);
    EXPECT_EQ(hd->q[0].desc.ring_size, ring);
    EXPECT_EQ(plmq_max_msg(q), ring / 2 - 8);
    plmq_close(q);
    plmq* bad = nullptr;
    EXPECT_EQ(plmq_attach(h, 2, PLSEG_READER, nullptr, &bad), -EINVAL);
}

TEST(Mq, QueuedMessagesOutliveTheirSender) {
    Segment seg(kSegSize);
    Doorbells bells;
    Handle h(seg, bells, 1);
    for (const char* m : {"one", "two"}) {
        plmq* w = nullptr;
        ASSERT_EQ(plmq_attach(h, 0, PLSEG_WRITER, nullptr, &w), 0);
        ASSERT_EQ(plmq_send(w, m, strlen(m), 100), 0);
        plmq_close(w);
    }
    plmq* r = nullptr;
    ASSERT_EQ(plmq_attach(h, 0, PLSEG_READER, nullptr, &r), 0);
    char buf[16];
    size_t len = 0;
    ASSERT_EQ(plmq_recv(r, buf, sizeof(buf), &len, 100), 0);
    EXPECT_EQ(std::string(buf, len), "one");
    // a buffer too small: the message stays queued
    EXPECT_EQ(plmq_recv(r, buf, 2, &len, 100), -EMSGSIZE);
    EXPECT_EQ(len, 3u);
    ASSERT_EQ(plmq_recv(r, buf, sizeof(buf), &len, 100), 0);
    EXPECT_EQ(std::string(buf, len), "two");
    EXPECT_EQ(plmq_recv(r, buf, sizeof(buf), &len, 0), -EAGAIN);
    plmq_close(r);
}

TEST(Mq, SecondSenderIsRefusedWhileTheFirstLives) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t first = fork_child([&] {
        Handle h(seg, bells, 1);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q))
            return 10;
        bells.shared().value[0] = 1;
        for (;;) { // alive: keeps its heartbeat going
            plmq_heartbeat(q);
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[0].load() == 1; }));
    Handle h(seg, bells, 2);
    plmq* q = nullptr;
    plseg_peer holder{};
    plseg_chan_opts opts{};
    opts.holder = &holder;
    EXPECT_EQ(plmq_attach(h, 0, PLSEG_WRITER, &opts, &q), -EBUSY);
    EXPECT_EQ(holder.pid, static_cast<uint32_t>(first));
    // the other direction is free
    ASSERT_EQ(plmq_attach(h, 1, PLSEG_WRITER, &opts, &q), 0);
    plmq_close(q);
    kill(first, SIGKILL);
    wait_child(first);
}

TEST(Mq, PingPongUsesBothQueues) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t pong = fork_child([&] {
        Handle h(seg, bells, 2);
        plmq *rx = nullptr, *tx = nullptr;
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &rx) ||
            plmq_attach(h, 1, PLSEG_WRITER, nullptr, &tx))
            return 10;
        std::vector<char> buf(plmq_max_msg(rx));
        for (;;) {
            size_t len;
            int r = plmq_recv(rx, buf.data(), buf.size(), &len, 20000);
            if (r == PLMQ_END)
                return 0;
            if (r || plmq_send(tx, buf.data(), len, 20000))
                return 11;
        }
    });
    Handle h(seg, bells, 1);
    plmq *tx = nullptr, *rx = nullptr;
    ASSERT_EQ(plmq_attach(h, 0, PLSEG_WRITER, nullptr, &tx), 0);
    ASSERT_EQ(plmq_attach(h, 1, PLSEG_READER, nullptr, &rx), 0);
    for (uint64_t i = 0; i < 2000; i++) {
        uint64_t back = ~i;
        size_t len = 0;
        ASSERT_EQ(plmq_send(tx, &i, sizeof(i), 20000), 0);
        ASSERT_EQ(plmq_recv(rx, &back, sizeof(back), &len, 20000), 0);
        ASSERT_EQ(len, sizeof(i));
        ASSERT_EQ(back, i);
    }
    ASSERT_EQ(plmq_send_end(tx, 1000), 0);
    EXPECT_EQ(wait_child(pong), 0);
    plmq_close(tx);
    plmq_close(rx);
}

TEST(Mq, FastPairRingsFarFewerTimesThanItSends) {
    Segment seg(kSegSize);
    Doorbells bells;
    const uint64_t count = 200000;
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &q))
            return 20;
        uint64_t v;
        size_t len;
        for (uint64_t i = 0; i < count; i++)
            if (plmq_recv(q, &v, sizeof(v), &len, 20000) || v != i)
                return 21;
        plmq_close(q);
        return 0;
    });
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q))
            return 10;
        for (uint64_t i = 0; i < count; i++)
            if (plmq_send(q, &i, sizeof(i), 20000))
                return 11;
        plmq_close(q);
        return 0;
    });
    EXPECT_EQ(wait_child(w, 60000), 0);
    EXPECT_EQ(wait_child(r, 60000), 0);
    uint64_t rings = bells.total_rings();
    RecordProperty("rings", std::to_string(rings));
    std::printf("%llu doorbells for %llu messages\n", static_cast<unsigned long long>(rings),
                static_cast<unsigned long long>(count));
    EXPECT_LT(rings, count / 20) << rings << " doorbells for " << count << " messages";
}

TEST(Mq, SleepingReceiverIsWokenByTheDoorbell) {
    Segment seg(kSegSize);
    Doorbells bells;
    const int count = 20;
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &q))
            return 20;
        std::vector<int64_t> lat;
        for (int i = 0; i < count; i++) {
            int64_t sent;
            size_t len;
            if (plmq_recv(q, &sent, sizeof(sent), &len, 20000))
                return 21;
            lat.push_back(now_ns() - sent);
        }
        std::sort(lat.begin(), lat.end());
        bells.shared().value[0] = static_cast<uint64_t>(lat[count / 2]);
        plmq_close(q);
        return 0;
    });
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q))
            return 10;
        for (int i = 0; i < count; i++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
            int64_t t = now_ns();
            if (plmq_send(q, &t, sizeof(t), 20000))
                return 11;
        }
        plmq_close(q);
        return 0;
    });
    EXPECT_EQ(wait_child(w), 0);
    EXPECT_EQ(wait_child(r), 0);
    // Every message found the receiver asleep and rang it; it woke well
    // before its 100 ms heartbeat timeout would have.
    EXPECT_GE(bells.shared().rings[1].load(), static_cast<uint64_t>(count * 3 / 4));
    EXPECT_LT(bells.shared().value[0].load(), 50u * 1000 * 1000) << "median latency, ns";
}

TEST(Mq, SenderKilledMidMessageLosesOnlyThatMessage) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q))
            return 10;
        for (uint64_t i = 0; i < 100; i++)
            if (plmq_send(q, &i, sizeof(i), 1000))
                return 11;
        // Half of a record, as a sender killed inside its copy leaves it:
        // written, not published.
        plseg_queue& qu = seg.hdr()->q[0];
        uint64_t head = qu.w.index;
        unsigned char* ring = seg.mem() + qu.desc.ring_offset;
        uint32_t hdr[2] = {1000, PLMQ_REC_MSG};
        memcpy(ring + head % qu.desc.ring_size, hdr, sizeof(hdr));
        memset(ring + head % qu.desc.ring_size + 8, 0xee, 500);
        bells.shared().value[0] = 1;
        pause();
        return 12;
    });
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plmq* q = nullptr;
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &q))
            return 20;
        uint64_t v = 0;
        size_t len;
        for (uint64_t i = 0; i < 100; i++)
            if (plmq_recv(q, &v, sizeof(v), &len, 20000) || v != i || len != sizeof(v))
                return 21;
        int err = plmq_recv(q, &v, sizeof(v), &len, 20000);
        bells.shared().time_ms[1] = now_ms();
        if (err != -EPIPE)
            return 22;
        // A new sender carries on where the dead one's last whole message
        // ended.
        while (bells.shared().value[1].load() == 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        plmq_close(q);
        if (plmq_attach(h, 0, PLSEG_READER, nullptr, &q))
            return 23;
        if (plmq_recv(q, &v, sizeof(v), &len, 20000) || v != 4242)
            return 24;
        plmq_close(q);
        return 0;
    });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[0].load() == 1; }));
    kill(w, SIGKILL);
    int64_t killed = now_ms();
    EXPECT_EQ(wait_child(w), -SIGKILL);
    ASSERT_TRUE(eventually([&] { return bells.shared().time_ms[1].load() != 0; }));
    {
        Handle h(seg, bells, 3);
        plmq* q = nullptr;
        ASSERT_EQ(plmq_attach(h, 0, PLSEG_WRITER, nullptr, &q), 0);
        uint64_t v = 4242;
        ASSERT_EQ(plmq_send(q, &v, sizeof(v), 1000), 0);
        plmq_close(q);
        bells.shared().value[1] = 1;
    }
    EXPECT_EQ(wait_child(r), 0);
    EXPECT_LT(bells.shared().time_ms[1].load() - killed, 8000);
}

} // namespace
} // namespace plseg_test
