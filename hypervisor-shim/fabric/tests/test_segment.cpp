// The fabric segment: creation, reuse, robust locks, refusal of bad files,
// read-only opening, cleaning the ports of dead devices.
#include <fstream>
#include <signal.h>
#include <sys/wait.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_device.hpp"
#include "segment.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;
using ::testing::HasSubstr;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

// A child process that is reaped (killed if need be) when this goes.
class Child {
public:
    explicit Child(pid_t pid)
        : pid_(pid) {}
    ~Child() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_;
};

std::vector<std::string> g_lock_messages;

TEST(Segment, CreatesAnInitializedSegment) {
    TempDir dir;
    auto segment = Segment::open_or_create(dir / "fabric");
    EXPECT_TRUE(segment.created());
    EXPECT_TRUE(segment.writable());
    EXPECT_EQ(std::filesystem::file_size(dir / "fabric"), sizeof(partlink_fabric));
    EXPECT_EQ(segment.fabric().magic, static_cast<std::uint32_t>(PARTLINK_FABRIC_MAGIC));
    EXPECT_EQ(segment.fabric().version, static_cast<std::uint32_t>(PARTLINK_FABRIC_VERSION));
    EXPECT_EQ(segment.fabric().nr_ports, static_cast<std::uint32_t>(PARTLINK_FABRIC_PORTS));
    for (unsigned i = 0; i < PARTLINK_FABRIC_PORTS; ++i) {
        EXPECT_EQ(segment.port(i).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
        EXPECT_EQ(segment.port(i).epoch, 0u);
    }
    // Nothing but the segment is left in the directory.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()),
                            std::filesystem::directory_iterator()),
              1);
    // The locks work.
    PortLock lock(segment.port_rw(7), 7);
    EXPECT_FALSE(lock.recovered());
}

TEST(Segment, ReopeningKeepsTheContents) {
    TempDir dir;
    {
        auto segment = Segment::open_or_create(dir / "fabric");
        auto& port = segment.port_rw(5);
        PortLock lock(port, 5);
        port.state = PARTLINK_PORT_UP;
        port.epoch = 41;
        port.pid = ::getpid();
        port.counters[PARTLINK_CTR_COPIES] = 12345;
        std::strcpy(port.name, "vm6");
    }
    auto segment = Segment::open_or_create(dir / "fabric");
    EXPECT_FALSE(segment.created());
    EXPECT_EQ(segment.port(5).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(segment.port(5).epoch, 41u);
    EXPECT_EQ(load_counter(segment.port(5), PARTLINK_CTR_COPIES), 12345u);
    EXPECT_EQ(port_name(segment.port(5)), "vm6");
    // Still lockable: not re-initialized, not broken.
    PortLock lock(segment.port_rw(5), 5);
    EXPECT_FALSE(lock.recovered());
}

// A child that takes port `index`'s lock in its own mapping and dies.
void die_holding_lock(const std::filesystem::path& path, unsigned index) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        try {
            auto mine = Segment::open_or_create(path);
            auto* mutex = reinterpret_cast<pthread_mutex_t*>(mine.port_rw(index).rx_lock);
            ::_exit(pthread_mutex_lock(mutex) == 0 ? 0 : 2);
        } catch (...) {
            ::_exit(3);
        }
    }
    int status = Child(pid).wait();
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
}

TEST(Segment, RecoversALockWhoseHolderDied) {
    TempDir dir;
    auto segment = Segment::open_or_create(dir / "fabric");
    g_lock_messages.clear();
    set_lock_log([](std::string_view m) { g_lock_messages.emplace_back(m); });
    std::strcpy(segment.port_rw(3).name, "vm4");
    die_holding_lock(dir / "fabric", 3);
    {
        PortLock lock(segment.port_rw(3), 3);
        EXPECT_TRUE(lock.recovered());
    }
    set_lock_log(nullptr);
    ASSERT_EQ(g_lock_messages.size(), 1u);
    EXPECT_EQ(g_lock_messages[0],
              "a process died holding the RX lock of port 3 (vm4); lock recovered");
    // Consistent again: the next holder sees nothing wrong.
    PortLock again(segment.port_rw(3), 3);
    EXPECT_FALSE(again.recovered());
}

TEST(Segment, ALockNobodyMadeConsistentIsAnError) {
    TempDir dir;
    auto segment = Segment::open_or_create(dir / "fabric");
    die_holding_lock(dir / "fabric", 9);
    // A careless holder that does not make it consistent before unlocking.
    auto* mutex = reinterpret_cast<pthread_mutex_t*>(segment.port_rw(9).rx_lock);
    ASSERT_EQ(pthread_mutex_lock(mutex), EOWNERDEAD);
    ASSERT_EQ(pthread_mutex_unlock(mutex), 0);
    EXPECT_THAT(error_of([&] { PortLock lock(segment.port_rw(9), 9); }),
                HasSubstr("the RX lock of port 9 in the fabric segment is unrecoverable"));
    // Other ports are not affected.
    PortLock other(segment.port_rw(10), 10);
    EXPECT_FALSE(other.recovered());
}

TEST(Segment, RefusesAFileOfTheWrongSize) {
    TempDir dir;
    std::ofstream(dir / "fabric") << "not a segment";
    auto message = error_of([&] { Segment::open_or_create(dir / "fabric"); });
    EXPECT_THAT(message, HasSubstr("is not a partlink fabric segment (size 13 bytes"));
    EXPECT_THAT(message, HasSubstr("remove " + (dir / "fabric").string()));
    // And leaves it alone.
    EXPECT_EQ(std::filesystem::file_size(dir / "fabric"), 13u);
}

TEST(Segment, RefusesABadMagicOrVersion) {
    TempDir dir;
    {
        auto segment = Segment::open_or_create(dir / "fabric");
        segment.fabric_rw().magic = 0x12345678;
    }
    EXPECT_THAT(error_of([&] { Segment::open_or_create(dir / "fabric"); }),
                HasSubstr("not a partlink fabric segment (bad magic)"));
    {
        std::filesystem::remove(dir / "fabric");
        auto segment = Segment::open_or_create(dir / "fabric");
        segment.fabric_rw().version = 99;
    }
    EXPECT_THAT(error_of([&] { Segment::open_or_create(dir / "fabric"); }),
                HasSubstr("fabric segment of version 99, this partlinkd needs version " +
                          std::to_string(PARTLINK_FABRIC_VERSION)));
    EXPECT_THAT(error_of([&] { Segment::open_readonly(dir / "fabric"); }), HasSubstr("version 99"));
}

TEST(Segment, RefusesADirectoryAndASymlink) {
    TempDir dir;
    std::filesystem::create_directory(dir / "fabric");
    EXPECT_THAT(error_of([&] { Segment::open_or_create(dir / "fabric"); }),
                HasSubstr("cannot open fabric segment"));
    Segment::open_or_create(dir / "real");
    std::filesystem::create_symlink(dir / "real", dir / "link");
    EXPECT_THAT(error_of([&] { Segment::open_or_create(dir / "link"); }),
                HasSubstr("is a symbolic link"));
}

TEST(Segment, OpensReadOnlyForStatus) {
    TempDir dir;
    EXPECT_THAT(error_of([&] { Segment::open_readonly(dir / "fabric"); }),
                HasSubstr("no fabric segment at " + (dir / "fabric").string()));
    {
        auto segment = Segment::open_or_create(dir / "fabric");
        segment.port_rw(2).epoch = 3;
    }
    auto segment = Segment::open_readonly(dir / "fabric");
    EXPECT_FALSE(segment.writable());
    EXPECT_EQ(segment.fabric().ports[2].epoch, 3u);
    EXPECT_THAT(error_of([&] { segment.port_rw(2); }), HasSubstr("read-only"));
}

TEST(Segment, CleansThePortsOfDeadProcesses) {
    TempDir dir;
    auto segment = Segment::open_or_create(dir / "fabric");
    pid_t dead = ::fork();
    ASSERT_GE(dead, 0);
    if (dead == 0)
        ::_exit(0);
    Child(dead).wait();

    auto& gone = segment.port_rw(1);
    gone.state = PARTLINK_PORT_UP;
    gone.pid = dead;
    gone.epoch = 4;
    gone.rx_ready = 1;
    gone.counters[0] = 99;
    auto& alive = segment.port_rw(2);
    alive.state = PARTLINK_PORT_UP;
    alive.pid = ::getpid();
    alive.epoch = 8;
    alive.rx_ready = 1;

    std::strcpy(gone.name, "vm2");
    gone.network = 3;
    auto cleaned = clean_dead_ports(segment);
    ASSERT_EQ(cleaned.size(), 1u);
    EXPECT_EQ(cleaned[0].index, 1u);
    EXPECT_EQ(cleaned[0].epoch, 4u);
    EXPECT_EQ(cleaned[0].network, 3u);
    EXPECT_EQ(cleaned[0].pid, dead);
    EXPECT_EQ(cleaned[0].name, "vm2");
    EXPECT_EQ(gone.state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    EXPECT_EQ(gone.epoch, 5u);
    EXPECT_EQ(gone.rx_ready, 0u);
    EXPECT_EQ(gone.counters[0], 99u) << "counters are history, kept";
    EXPECT_EQ(alive.state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(alive.epoch, 8u);
    EXPECT_EQ(alive.rx_ready, 1u);

    // Skipped ports are left alone; a FREE port is not cleaned twice.
    auto& skipped = segment.port_rw(4);
    skipped.state = PARTLINK_PORT_UP;
    skipped.pid = dead;
    EXPECT_TRUE(clean_dead_ports(segment, [](unsigned i) { return i == 4; }).empty());
    EXPECT_EQ(skipped.state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(gone.epoch, 5u);
}

TEST(Segment, EpochsSkipZero) {
    EXPECT_EQ(next_epoch(0), 1u);
    EXPECT_EQ(next_epoch(41), 42u);
    EXPECT_EQ(next_epoch(0xffffffffu), 1u);
}

TEST(Segment, FormatsMacs) {
    const std::uint8_t mac[6] = {0x52, 0x54, 0, 0xab, 0xcd, 0xef};
    EXPECT_EQ(format_mac(mac), "52:54:00:ab:cd:ef");
}

} // namespace
