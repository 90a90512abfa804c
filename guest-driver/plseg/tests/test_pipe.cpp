// Pipes between forked processes on a memfd "segment" with eventfd
// doorbells: a 64 MiB transfer, the end of the stream, sessions, a killed
// or departed peer, a second reader, doorbells only for sleepers, and a
// revoked segment.
#include <vector>

#include <gtest/gtest.h>

#include "seg_fixture.hpp"

namespace plseg_test {
namespace {

constexpr size_t kSegSize = (1 << 20) + 4096; // a 1 MiB ring

// Writes `total` bytes of Stream(seed) in chunks of `chunk`, ends the
// stream and waits for the reader.  Records its checksum in value[slot].
int write_stream(Segment& seg, Doorbells& bells, uint32_t port, uint64_t seed, size_t total,
                 size_t chunk, int slot) {
    Handle h(seg, bells, port);
    plpipe* p = nullptr;
    if (plpipe_attach(h, PLSEG_WRITER, nullptr, &p))
        return 10;
    Stream s(seed);
    Fnv sum;
    std::vector<unsigned char> buf(chunk);
    for (size_t done = 0; done < total;) {
        size_t n = std::min(chunk, total - done);
        s.fill(buf.data(), n);
        sum.add(buf.data(), n);
        if (plpipe_write_all(p, buf.data(), n, 20000))
            return 11;
        done += n;
    }
    if (plpipe_finish(p, 20000))
        return 12;
    bells.shared().value[slot] = sum.value();
    plpipe_close(p);
    return 0;
}

// Reads to the end of the stream and checks every byte against
// Stream(seed).  Records its checksum in value[slot].
int read_stream(Segment& seg, Doorbells& bells, uint32_t port, uint64_t seed, size_t total,
                int slot) {
    Handle h(seg, bells, port);
    plpipe* p = nullptr;
    if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
        return 20;
    Stream s(seed);
    Fnv sum;
    std::vector<unsigned char> buf(100000), want(100000);
    size_t got = 0;
    for (;;) {
        ssize_t n = plpipe_read(p, buf.data(), buf.size(), 20000);
        if (n == 0)
            break;
        if (n < 0)
            return 21;
        s.fill(want.data(), static_cast<size_t>(n));
        if (memcmp(buf.data(), want.data(), static_cast<size_t>(n)) != 0)
            return 22;
        sum.add(buf.data(), static_cast<size_t>(n));
        got += static_cast<size_t>(n);
    }
    bells.shared().value[slot] = sum.value();
    plpipe_close(p);
    return got == total ? 0 : 23;
}

TEST(Pipe, Transfers64MiBBetweenProcessesIntact) {
    Segment seg(kSegSize);
    Doorbells bells;
    const size_t total = 64u << 20;
    pid_t r = fork_child([&] { return read_stream(seg, bells, 1, 42, total, 0); });
    pid_t w = fork_child([&] { return write_stream(seg, bells, 2, 42, total, 65536 + 7, 1); });
    EXPECT_EQ(wait_child(w, 60000), 0);
    EXPECT_EQ(wait_child(r, 60000), 0);
    EXPECT_NE(bells.shared().value[0].load(), 0u);
    EXPECT_EQ(bells.shared().value[0].load(), bells.shared().value[1].load());
}

TEST(Pipe, EndOfStreamAfterTheLastByte) {
    Segment seg(kSegSize);
    Doorbells bells;
    Handle h(seg, bells, 1);
    plpipe *w = nullptr, *r = nullptr;
    ASSERT_EQ(plpipe_attach(h, PLSEG_READER, nullptr, &r), 0);
    ASSERT_EQ(plpipe_attach(h, PLSEG_WRITER, nullptr, &w), 0);
    char buf[64];
    EXPECT_EQ(plpipe_read(r, buf, sizeof(buf), 0), -EAGAIN);
    EXPECT_EQ(plpipe_read(r, buf, sizeof(buf), 50), -ETIMEDOUT);
    ASSERT_EQ(plpipe_write_all(w, "hello", 5, 1000), 0);
    plpipe_close(w); // ends the stream
    ASSERT_EQ(plpipe_read(r, buf, sizeof(buf), 1000), 5);
    EXPECT_EQ(std::string(buf, 5), "hello");
    EXPECT_EQ(plpipe_read(r, buf, sizeof(buf), 1000), 0);
    EXPECT_EQ(plpipe_read(r, buf, sizeof(buf), 1000), 0);
    plpipe_close(r);
}

TEST(Pipe, WrapsAroundTheRingInOddChunks) {
    Segment seg(3 * 4096); // an 8 KiB ring
    Doorbells bells;
    const size_t total = 1u << 20;
    pid_t r = fork_child([&] { return read_stream(seg, bells, 1, 7, total, 0); });
    pid_t w = fork_child([&] { return write_stream(seg, bells, 2, 7, total, 3001, 1); });
    EXPECT_EQ(wait_child(w), 0);
    EXPECT_EQ(wait_child(r), 0);
    EXPECT_EQ(bells.shared().value[0].load(), bells.shared().value[1].load());
}

TEST(Pipe, SenderFirstWaitsUntilTheReceiverTookEverything) {
    Segment seg(kSegSize);
    Doorbells bells;
    const size_t total = 100000;
    pid_t w = fork_child([&] {
        int st = write_stream(seg, bells, 2, 9, total, 4096, 1);
        bells.shared().time_ms[0] = now_ms();
        return st;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int64_t reader_start = now_ms();
    pid_t r = fork_child([&] { return read_stream(seg, bells, 1, 9, total, 0); });
    EXPECT_EQ(wait_child(w), 0);
    EXPECT_EQ(wait_child(r), 0);
    // finish() returned only after the reader had come and read it all
    EXPECT_GE(bells.shared().time_ms[0].load(), reader_start);
    EXPECT_EQ(bells.shared().value[0].load(), bells.shared().value[1].load());
}

TEST(Pipe, SecondTransferStartsAFreshStream) {
    Segment seg(kSegSize);
    Doorbells bells;
    for (uint64_t seed : {11, 12, 13}) {
        // alternate who comes first
        pid_t a, b;
        if (seed % 2) {
            a = fork_child([&] { return read_stream(seg, bells, 1, seed, 300000, 0); });
            b = fork_child([&] { return write_stream(seg, bells, 2, seed, 300000, 5000, 1); });
        } else {
            a = fork_child([&] { return write_stream(seg, bells, 2, seed, 300000, 5000, 1); });
            b = fork_child([&] { return read_stream(seg, bells, 1, seed, 300000, 0); });
        }
        EXPECT_EQ(wait_child(a), 0) << "seed " << seed;
        EXPECT_EQ(wait_child(b), 0) << "seed " << seed;
    }
}

// A writer that never ends: streams until killed.
int endless_writer(Segment& seg, Doorbells& bells, uint32_t port) {
    Handle h(seg, bells, port);
    plpipe* p = nullptr;
    if (plpipe_attach(h, PLSEG_WRITER, nullptr, &p))
        return 10;
    char buf[1024] = {};
    for (;;) {
        if (plpipe_write_all(p, buf, sizeof(buf), -1))
            return 11;
        bells.shared().value[5]++;
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
}

TEST(Pipe, ReaderDetectsAKilledWriterWithinThreeSeconds) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t w = fork_child([&] { return endless_writer(seg, bells, 2); });
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
            return 20;
        char buf[4096];
        ssize_t n;
        while ((n = plpipe_read(p, buf, sizeof(buf), -1)) > 0)
            bells.shared().value[6]++;
        bells.shared().time_ms[1] = now_ms();
        plseg_peer peer{};
        plpipe_peer(p, &peer);
        bells.shared().value[7] = peer.pid;
        return n == -EPIPE ? 0 : 21;
    });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[6].load() > 20; }));
    kill(w, SIGKILL);
    int64_t killed = now_ms();
    EXPECT_EQ(wait_child(w), -SIGKILL);
    EXPECT_EQ(wait_child(r, 10000), 0);
    int64_t took = bells.shared().time_ms[1].load() - killed;
    EXPECT_LT(took, 8000); // generous: a busy CI machine
    EXPECT_GE(took, 1500); // not before the heartbeat could have moved
    EXPECT_EQ(bells.shared().value[7].load(), static_cast<uint64_t>(w));
}

TEST(Pipe, WriterDetectsAKilledReader) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
            return 20;
        char buf[100];
        if (plpipe_read(p, buf, sizeof(buf), -1) <= 0)
            return 21;
        bells.shared().value[0] = 1;
        pause(); // alive, attached, not reading
        return 22;
    });
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_WRITER, nullptr, &p))
            return 10;
        std::vector<char> buf(4u << 20);
        int err = plpipe_write_all(p, buf.data(), buf.size(), -1); // fills the ring
        bells.shared().time_ms[1] = now_ms();
        return err == -EPIPE ? 0 : 11;
    });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[0].load() == 1; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(r, SIGKILL);
    int64_t killed = now_ms();
    EXPECT_EQ(wait_child(r), -SIGKILL);
    EXPECT_EQ(wait_child(w, 10000), 0);
    EXPECT_LT(bells.shared().time_ms[1].load() - killed, 8000);
}

TEST(Pipe, ReaderThatLeavesEarlyStopsTheWriterAtOnce) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t w = fork_child([&] {
        Handle h(seg, bells, 2);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_WRITER, nullptr, &p))
            return 10;
        std::vector<char> buf(8u << 20);
        int err = plpipe_write_all(p, buf.data(), buf.size(), -1);
        bells.shared().time_ms[1] = now_ms();
        return err == -EPIPE ? 0 : 11;
    });
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
            return 20;
        char buf[100];
        if (plpipe_read(p, buf, sizeof(buf), -1) <= 0)
            return 21;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        bells.shared().time_ms[0] = now_ms();
        plpipe_close(p);
        return 0;
    });
    EXPECT_EQ(wait_child(r), 0);
    EXPECT_EQ(wait_child(w), 0);
    // The closed flag, not the 2 s heartbeat, told the writer.
    EXPECT_LT(bells.shared().time_ms[1].load() - bells.shared().time_ms[0].load(),
              PLSEG_STALE_MS - 300);
}

TEST(Pipe, SecondReaderIsRefusedWhileTheFirstLives) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t first = fork_child([&] {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
            return 20;
        bells.shared().value[0] = 1;
        char buf[16];
        plpipe_read(p, buf, sizeof(buf), -1); // blocks: no writer
        return 21;
    });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[0].load() == 1; }));

    Handle h(seg, bells, 3);
    plpipe* p = nullptr;
    plseg_peer holder{};
    plseg_chan_opts opts{};
    opts.holder = &holder;
    int64_t t0 = now_ms();
    EXPECT_EQ(plpipe_attach(h, PLSEG_READER, &opts, &p), -EBUSY);
    EXPECT_LT(now_ms() - t0, PLSEG_STALE_MS - 300); // refused, not waited out
    EXPECT_EQ(holder.pid, static_cast<uint32_t>(first));
    EXPECT_EQ(holder.port, 1u);

    // Once it is dead, its place can be taken.
    kill(first, SIGKILL);
    EXPECT_EQ(wait_child(first), -SIGKILL);
    t0 = now_ms();
    ASSERT_EQ(plpipe_attach(h, PLSEG_READER, &opts, &p), 0);
    EXPECT_LT(now_ms() - t0, 8000);
    plpipe_close(p);
}

TEST(Pipe, NewReaderDoesNotInheritADeadWritersHalfStream) {
    Segment seg(kSegSize);
    Doorbells bells;
    // A writer that dies mid-stream with nobody reading.
    pid_t w = fork_child([&] { return endless_writer(seg, bells, 2); });
    ASSERT_TRUE(eventually([&] { return bells.shared().value[5].load() > 5; }));
    kill(w, SIGKILL);
    EXPECT_EQ(wait_child(w), -SIGKILL);

    // Both ends are gone: the next reader starts a new stream and gets
    // exactly the next writer's bytes, not "writer went away".
    pid_t r = fork_child([&] { return read_stream(seg, bells, 1, 77, 50000, 0); });
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));
    pid_t w2 = fork_child([&] { return write_stream(seg, bells, 2, 77, 50000, 999, 1); });
    EXPECT_EQ(wait_child(w2), 0);
    EXPECT_EQ(wait_child(r), 0);
}

TEST(Pipe, NewWriterDoesNotJoinASessionWhoseReaderLeft) {
    Segment seg(kSegSize);
    Doorbells bells;
    // A reader that gave up before any writer came (plpipe recv
    // --timeout, or ^C) leaves a session with a reader token and no
    // writer.
    {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        ASSERT_EQ(plpipe_attach(h, PLSEG_READER, nullptr, &p), 0);
        char buf[16];
        EXPECT_EQ(plpipe_read(p, buf, sizeof(buf), 50), -ETIMEDOUT);
        plpipe_close(p);
    }
    // The next writer, first to arrive, starts a new stream instead of
    // joining that one and hearing at once that its reader went away;
    // the reader that follows gets the stream whole.
    pid_t w = fork_child([&] { return write_stream(seg, bells, 2, 78, 50000, 999, 1); });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    pid_t r = fork_child([&] { return read_stream(seg, bells, 1, 78, 50000, 0); });
    EXPECT_EQ(wait_child(w), 0);
    EXPECT_EQ(wait_child(r), 0);
    EXPECT_EQ(bells.shared().value[0].load(), bells.shared().value[1].load());
}

TEST(Pipe, HeartbeatMovesWhileBlocked) {
    Segment seg(kSegSize);
    Doorbells bells;
    pid_t r = fork_child([&] {
        Handle h(seg, bells, 1);
        plpipe* p = nullptr;
        if (plpipe_attach(h, PLSEG_READER, nullptr, &p))
            return 20;
        char buf[16];
        plpipe_read(p, buf, sizeof(buf), -1);
        return 21;
    });
    auto& line = seg.hdr()->q[0].r;
    ASSERT_TRUE(eventually([&] { return __atomic_load_n(&line.owner, __ATOMIC_ACQUIRE) != 0; }));
    uint64_t hb0 = __atomic_load_n(&line.heartbeat, __ATOMIC_ACQUIRE);
    std::this_thread::sleep_for(std::chrono::milliseconds(350));
    uint64_t hb1 = __atomic_load_n(&line.heartbeat, __ATOMIC_ACQUIRE);
    EXPECT_GE(hb1 - hb0, 2u);
    EXPECT_EQ(line.pid, static_cast<uint32_t>(r));
    EXPECT_EQ(line.sleeping, 1u);
    kill(r, SIGKILL);
    wait_child(r);
}

TEST(Pipe, RevokedSegmentGivesENODEVNotSIGBUS) {
    ASSERT_EQ(plseg_guard_sigbus(), 0);
    Segment seg(kSegSize);
    Doorbells bells;
    Handle h(seg, bells, 1);
    plpipe *w = nullptr, *r = nullptr;
    ASSERT_EQ(plpipe_attach(h, PLSEG_READER, nullptr, &r), 0);
    ASSERT_EQ(plpipe_attach(h, PLSEG_WRITER, nullptr, &w), 0);
    ASSERT_EQ(plpipe_write_all(w, "abc", 3, 1000), 0);
    // what the driver does to a revoked segment: accesses fault
    ASSERT_EQ(ftruncate(seg.fd(), 0), 0);
    char buf[16];
    EXPECT_EQ(plpipe_read(r, buf, sizeof(buf), 1000), -ENODEV);
    EXPECT_EQ(plpipe_write(w, "d", 1, 1000), -ENODEV);
    EXPECT_EQ(plseg_check(h), -ENODEV);
    EXPECT_EQ(plseg_wait(h, 0), -ENODEV);
    plpipe_abort(w);
    plpipe_close(r);
}

} // namespace
} // namespace plseg_test
