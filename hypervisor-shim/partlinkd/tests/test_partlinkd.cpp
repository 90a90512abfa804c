// The real partlinkd with fake devices: registration and peer announcements
// with working fds, network isolation, PEER_DOWN, a daemon killed and
// restarted under running devices, refusals, usage errors.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <endian.h>
#include <fstream>
#include <map>
#include <optional>
#include <poll.h>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "capacity/audit_log.hpp"
#include "capacity/cgroup.hpp"
#include "capacity/chart_log.hpp"
#include "fake_device.hpp"
#include "segment.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

namespace {

std::string binary() {
    const char* path = std::getenv("PARTLINKD_BIN");
    return path ? path : "partlinkd";
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// A process reaped when this goes, killed first if still running.
class Process {
public:
    Process() = default;
    explicit Process(pid_t pid)
        : pid_(pid) {}
    Process(Process&& other) noexcept
        : pid_(std::exchange(other.pid_, -1)) {}
    Process& operator=(Process&& other) noexcept {
        if (this != &other) {
            kill_and_reap();
            pid_ = std::exchange(other.pid_, -1);
        }
        return *this;
    }
    ~Process() { kill_and_reap(); }

    pid_t pid() const { return pid_; }
    bool running() const { return pid_ > 0; }

    // Sends `sig` and waits; returns the wait status.
    int stop(int sig) {
        ::kill(pid_, sig);
        return wait();
    }
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }
    // The wait status if it has exited, without waiting.
    std::optional<int> exited() {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return status;
        }
        return std::nullopt;
    }

private:
    void kill_and_reap() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        pid_ = -1;
    }
    pid_t pid_ = -1;
};

// partlinkd with stderr in a log file.
Process spawn(const std::vector<std::string>& args, const std::filesystem::path& log) {
    std::vector<char*> argv;
    std::string bin = binary();
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        ::dup2(fd, STDERR_FILENO);
        ::dup2(fd, STDOUT_FILENO);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    return Process(pid);
}

class Daemon {
public:
    Daemon(const TempDir& dir, std::optional<std::string> config = std::nullopt)
        : dir_(dir) {
        if (config) {
            std::ofstream(dir / "partlinkd.json") << *config;
        }
        has_config_ = config.has_value();
    }

    std::filesystem::path socket() const { return dir_ / "fabric.sock"; }
    std::filesystem::path segment() const { return dir_ / "fabric.seg"; }
    std::filesystem::path log() const { return dir_ / "partlinkd.log"; }
    std::string log_text() const { return read_file(log()); }

    std::vector<std::string> args() const {
        std::vector<std::string> a = {"--socket", socket(), "--segment", segment()};
        if (has_config_) {
            a.push_back("--config");
            a.push_back(dir_ / "partlinkd.json");
        }
        a.insert(a.end(), extra_args.begin(), extra_args.end());
        return a;
    }

    // More arguments, such as --capacity FILE.
    std::vector<std::string> extra_args;

    // Starts it and waits for "listening on"; the n-th start waits for the
    // n-th such line.
    void start() {
        ++starts_;
        process_ = spawn(args(), log());
        wait_for_log("partlinkd: listening on " + socket().string(), starts_);
    }

    // Waits until `text` is in the log `count` times.
    void wait_for_log(const std::string& text, int count = 1) {
        auto deadline = std::chrono::steady_clock::now() + 10s;
        for (;;) {
            std::string log = log_text();
            int found = 0;
            for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
                ++found;
            if (found >= count)
                return;
            if (process_.running())
                if (auto status = process_.exited())
                    throw std::runtime_error("partlinkd exited (status " + std::to_string(*status) +
                                             "): " + log);
            if (std::chrono::steady_clock::now() > deadline)
                throw std::runtime_error("no '" + text + "' in the log within 10 s: " + log);
            std::this_thread::sleep_for(10ms);
        }
    }

    Process& process() { return process_; }

private:
    const TempDir& dir_;
    bool has_config_ = false;
    int starts_ = 0;
    Process process_;
};

// Nothing arrives on `fd` within `ms`.
bool quiet(int fd, int ms = 300) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 0;
}

template <typename T>
T expect(FakeDevice& dev, std::uint32_t type, Received* keep = nullptr) {
    Received r = dev.receive();
    if (r.type == PARTLINK_MSG_REFUSE && type != PARTLINK_MSG_REFUSE)
        ADD_FAILURE() << "refused: " << refuse_reason(r);
    EXPECT_EQ(message_name(r.type), message_name(type));
    T value = payload_as<T>(r);
    if (keep)
        *keep = std::move(r);
    return value;
}

// A read-only view of a segment through an fd (as WELCOME gives it).
class SegmentView {
public:
    explicit SegmentView(int fd) {
        void* p = ::mmap(nullptr, sizeof(partlink_fabric), PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            throw std::runtime_error("mmap segment");
        fabric_ = static_cast<partlink_fabric*>(p);
    }
    ~SegmentView() { ::munmap(fabric_, sizeof(partlink_fabric)); }
    const partlink_fabric* operator->() const { return fabric_; }

private:
    partlink_fabric* fabric_;
};

std::string refused(FakeDevice& dev) {
    Received r = dev.receive();
    if (r.type != PARTLINK_MSG_REFUSE)
        return "got " + message_name(r.type);
    return refuse_reason(r);
}

// EOF, or a reset when the daemon closed with unread bytes from us.
bool closed_by_daemon(FakeDevice& dev) {
    try {
        dev.receive(5000);
    } catch (const Error& e) {
        std::string what = e.what();
        return what == "connection closed" || what.find("reset by peer") != std::string::npos;
    }
    return false;
}

TEST(Partlinkd, ThreeDevicesLearnAboutEachOtherWithWorkingFds) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    FakeDevice dev_a(0, "vm1"), dev_b(1, "vm2"), dev_c(2, "vm3");
    FakeDevice *a = &dev_a, *b = &dev_b, *c = &dev_c;

    a->connect(daemon.socket());
    a->send_hello();
    Received welcome_msg;
    auto welcome = expect<partlink_msg_welcome>(*a, PARTLINK_MSG_WELCOME, &welcome_msg);
    EXPECT_EQ(welcome.port, 0u);
    EXPECT_EQ(welcome.epoch, 1u);
    EXPECT_EQ(welcome.network, 1u);
    ASSERT_EQ(welcome_msg.fds.size(), 1u);
    SegmentView segment(welcome_msg.fds[0].get());
    EXPECT_EQ(segment->magic, static_cast<std::uint32_t>(PARTLINK_FABRIC_MAGIC));
    EXPECT_EQ(segment->ports[0].state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(segment->ports[0].pid, ::getpid());

    b->connect(daemon.socket());
    b->send_hello();
    EXPECT_EQ(expect<partlink_msg_welcome>(*b, PARTLINK_MSG_WELCOME).port, 1u);
    EXPECT_EQ(expect<partlink_msg_port>(*b, PARTLINK_MSG_PEER_UP).port, 0u);
    EXPECT_EQ(expect<partlink_msg_port>(*a, PARTLINK_MSG_PEER_UP).port, 1u);

    c->connect(daemon.socket());
    c->send_hello();
    expect<partlink_msg_welcome>(*c, PARTLINK_MSG_WELCOME);
    Received about_a;
    auto peer_a = expect<partlink_msg_port>(*c, PARTLINK_MSG_PEER_UP, &about_a);
    EXPECT_EQ(peer_a.port, 0u);
    EXPECT_EQ(peer_a.epoch, 1u);
    EXPECT_STREQ(peer_a.name, "vm1");
    EXPECT_EQ(peer_a.regions[0].size, a->ram_size);
    EXPECT_EQ(expect<partlink_msg_port>(*c, PARTLINK_MSG_PEER_UP).port, 1u);
    Received about_c;
    EXPECT_EQ(expect<partlink_msg_port>(*a, PARTLINK_MSG_PEER_UP, &about_c).port, 2u);
    EXPECT_EQ(expect<partlink_msg_port>(*b, PARTLINK_MSG_PEER_UP).port, 2u);

    // vm3 writes into vm1's RAM through the fd it was given; vm1 reads it
    // through its own mapping.  And the other way round.
    ASSERT_EQ(about_a.fds.size(), 2u);
    Mapping a_seen_by_c(about_a.fds[1].get(), a->ram_size);
    Mapping a_own(a->ram.get(), a->ram_size);
    std::strcpy(a_seen_by_c.data() + 0x1000, "one copy from vm3");
    EXPECT_STREQ(a_own.data() + 0x1000, "one copy from vm3");
    Mapping c_seen_by_a(about_c.fds[1].get(), c->ram_size);
    Mapping c_own(c->ram.get(), c->ram_size);
    std::strcpy(c_seen_by_a.data() + 0x2000, "and back from vm1");
    EXPECT_STREQ(c_own.data() + 0x2000, "and back from vm1");
    // The doorbell is vm1's eventfd.
    std::uint64_t kick = 1;
    ASSERT_EQ(::write(about_a.fds[0].get(), &kick, sizeof(kick)), 8);
    std::uint64_t got = 0;
    ASSERT_EQ(::read(a->doorbell.get(), &got, sizeof(got)), 8);
    EXPECT_EQ(got, 1u);

    EXPECT_TRUE(quiet(a->sock.get()));
    daemon.wait_for_log("vm3 (port 2, pid " + std::to_string(::getpid()) +
                        ") up (epoch 1) in network 1, 2 peers");
}

TEST(Partlinkd, KeepsNetworksApartAsConfigured) {
    TempDir dir;
    Daemon daemon(dir, R"({"networks": {"blue": ["vm1", "vm2"], "red": ["vm3"]}, "wlm": "vm1"})");
    daemon.start();
    FakeDevice a(0, "vm1"), b(1, "vm2"), c(2, "vm3"), d(3, "vm4");
    a.connect(daemon.socket());
    a.send_hello();
    auto welcome_a = expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME);
    EXPECT_EQ(welcome_a.network, 1u);
    EXPECT_EQ(welcome_a.flags, static_cast<std::uint32_t>(PARTLINK_PORT_WLM));

    c.connect(daemon.socket());
    c.send_hello();
    auto welcome_c = expect<partlink_msg_welcome>(c, PARTLINK_MSG_WELCOME);
    EXPECT_EQ(welcome_c.network, 2u);
    EXPECT_EQ(welcome_c.flags, 0u);

    b.connect(daemon.socket());
    b.send_hello();
    expect<partlink_msg_welcome>(b, PARTLINK_MSG_WELCOME);
    EXPECT_EQ(expect<partlink_msg_port>(b, PARTLINK_MSG_PEER_UP).port, 0u);
    EXPECT_EQ(expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP).port, 1u);
    EXPECT_TRUE(quiet(b.sock.get())) << "vm2 heard about vm3";
    EXPECT_TRUE(quiet(c.sock.get(), 50)) << "vm3 heard about blue";
    EXPECT_TRUE(quiet(a.sock.get(), 50));

    d.connect(daemon.socket());
    d.send_hello();
    EXPECT_EQ(refused(d), "vm4 is in no network of the configuration");
    EXPECT_TRUE(closed_by_daemon(d));

    // vm2 leaving: vm1 hears it, vm3 does not.
    b.sock.reset();
    auto down = expect<partlink_msg_peer_down>(a, PARTLINK_MSG_PEER_DOWN);
    EXPECT_EQ(down.port, 1u);
    EXPECT_TRUE(quiet(c.sock.get()));
    daemon.wait_for_log("vm1 (port 0, pid " + std::to_string(::getpid()) +
                        ") up (epoch 1) in network blue, 0 peers, WLM");
}

TEST(Partlinkd, ADisconnectTellsThePeersAndFreesTheSlot) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    FakeDevice a(0, "vm1"), b(1, "vm2"), c(2, "vm3");
    for (auto* dev : {&a, &b, &c}) {
        dev->connect(daemon.socket());
        dev->send_hello();
    }
    expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME);
    expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP);
    expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP);
    expect<partlink_msg_welcome>(b, PARTLINK_MSG_WELCOME);
    expect<partlink_msg_port>(b, PARTLINK_MSG_PEER_UP);
    expect<partlink_msg_port>(b, PARTLINK_MSG_PEER_UP);

    c.sock.reset();
    auto down_a = expect<partlink_msg_peer_down>(a, PARTLINK_MSG_PEER_DOWN);
    auto down_b = expect<partlink_msg_peer_down>(b, PARTLINK_MSG_PEER_DOWN);
    EXPECT_EQ(down_a.port, 2u);
    EXPECT_EQ(down_a.epoch, 1u);
    EXPECT_EQ(down_b.port, 2u);

    auto segment = Segment::open_readonly(daemon.segment());
    EXPECT_EQ(segment.port(2).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    EXPECT_EQ(segment.port(2).epoch, 2u);
    EXPECT_EQ(segment.port(0).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    daemon.wait_for_log("down (epoch 1 -> 2), 2 peers told");

    // It comes back with a new epoch.
    FakeDevice c2(2, "vm3");
    c2.connect(daemon.socket());
    c2.send_hello();
    EXPECT_EQ(expect<partlink_msg_welcome>(c2, PARTLINK_MSG_WELCOME).epoch, 3u);
    auto up = expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP);
    EXPECT_EQ(up.port, 2u);
    EXPECT_EQ(up.epoch, 3u);
}

TEST(Partlinkd, SurvivesAKillAndARestartUnderRunningDevices) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    FakeDevice a(0, "vm1"), b(1, "vm2");
    a.connect(daemon.socket());
    a.send_hello();
    Received welcome_msg;
    expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME, &welcome_msg);
    b.connect(daemon.socket());
    b.send_hello();
    expect<partlink_msg_welcome>(b, PARTLINK_MSG_WELCOME);
    expect<partlink_msg_port>(b, PARTLINK_MSG_PEER_UP);
    expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP);

    // The devices use the segment: counters.
    auto* fabric = static_cast<partlink_fabric*>(::mmap(nullptr, sizeof(partlink_fabric),
                                                        PROT_READ | PROT_WRITE, MAP_SHARED,
                                                        welcome_msg.fds[0].get(), 0));
    ASSERT_NE(fabric, MAP_FAILED);
    struct Unmap {
        partlink_fabric* f;
        ~Unmap() { ::munmap(f, sizeof(*f)); }
    } unmap{fabric};
    __atomic_store_n(&fabric->ports[0].counters[PARTLINK_CTR_COPIES], 4242u, __ATOMIC_RELAXED);

    int status = daemon.process().stop(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_TRUE(closed_by_daemon(a));
    EXPECT_TRUE(closed_by_daemon(b));
    // Nothing changed in the segment: the data path keeps going.
    EXPECT_EQ(fabric->ports[0].state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(fabric->ports[1].state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));

    daemon.start(); // over the stale socket file
    daemon.wait_for_log("reusing fabric segment " + daemon.segment().string() + " (2 ports up)");
    EXPECT_EQ(fabric->ports[0].epoch, 1u);
    EXPECT_EQ(fabric->ports[0].counters[PARTLINK_CTR_COPIES], 4242u);
    EXPECT_EQ(fabric->magic, static_cast<std::uint32_t>(PARTLINK_FABRIC_MAGIC));

    // The devices come back, from the same process: same epochs.
    a.connect(daemon.socket());
    a.send_hello();
    Received welcome_again;
    EXPECT_EQ(expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME, &welcome_again).epoch, 1u);
    struct stat old_st {
    }, new_st{};
    ::fstat(welcome_msg.fds[0].get(), &old_st);
    ::fstat(welcome_again.fds[0].get(), &new_st);
    EXPECT_EQ(old_st.st_ino, new_st.st_ino) << "the same segment file";
    b.connect(daemon.socket());
    b.send_hello();
    EXPECT_EQ(expect<partlink_msg_welcome>(b, PARTLINK_MSG_WELCOME).epoch, 1u);
    EXPECT_EQ(expect<partlink_msg_port>(b, PARTLINK_MSG_PEER_UP).epoch, 1u);
    EXPECT_EQ(expect<partlink_msg_port>(a, PARTLINK_MSG_PEER_UP).epoch, 1u);
    daemon.wait_for_log("registered again (epoch 1 kept)", 2);
    EXPECT_EQ(fabric->ports[0].counters[PARTLINK_CTR_COPIES], 4242u);
}

// A device in its own process, like a QEMU: registers, then waits to be
// killed.
Process device_process(const Daemon& daemon, unsigned port, const std::string& name) {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0)
        throw std::runtime_error("pipe2");
    UniqueFd ready_r(ready[0]), ready_w(ready[1]);
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error("fork");
    if (pid == 0) {
        try {
            FakeDevice dev(port, name);
            dev.connect(daemon.socket());
            dev.send_hello();
            auto r = dev.receive();
            char ok = r.type == PARTLINK_MSG_WELCOME ? 'y' : 'n';
            [[maybe_unused]] auto n = ::write(ready_w.get(), &ok, 1);
            ::pause();
        } catch (...) {
        }
        ::_exit(1);
    }
    Process device(pid);
    ready_w.reset();
    char ok = 0;
    if (::read(ready_r.get(), &ok, 1) != 1 || ok != 'y')
        throw std::runtime_error(name + " could not register");
    return device;
}

TEST(Partlinkd, FreesThePortsOfDevicesThatDiedWithoutAConnection) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    Process vm6 = device_process(daemon, 5, "vm6");
    Process vm7 = device_process(daemon, 6, "vm7");
    const pid_t vm6_pid = vm6.pid(), vm7_pid = vm7.pid();

    daemon.process().stop(SIGKILL);
    vm6.stop(SIGKILL); // dies while no daemon runs
    {
        auto segment = Segment::open_readonly(daemon.segment());
        EXPECT_EQ(segment.port(5).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
        EXPECT_EQ(segment.port(5).epoch, 1u);
    }
    daemon.start();
    daemon.wait_for_log("vm6 (port 5, pid " + std::to_string(vm6_pid) +
                        ") is gone: port freed (epoch 1 -> 2), 0 peers told");
    auto segment = Segment::open_readonly(daemon.segment());
    EXPECT_EQ(segment.port(5).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    EXPECT_EQ(segment.port(5).epoch, 2u);
    EXPECT_EQ(segment.port(6).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP))
        << "vm7 is alive, it will register again";

    // vm7 dies before registering again: the periodic sweep frees it and
    // tells the registered peers.
    FakeDevice a(0, "vm1");
    a.connect(daemon.socket());
    a.send_hello();
    expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME);
    vm7.stop(SIGKILL);
    auto down = expect<partlink_msg_peer_down>(a, PARTLINK_MSG_PEER_DOWN);
    EXPECT_EQ(down.port, 6u);
    EXPECT_EQ(down.epoch, 1u);
    EXPECT_EQ(segment.port(6).state, static_cast<std::uint32_t>(PARTLINK_PORT_FREE));
    daemon.wait_for_log("vm7 (port 6, pid " + std::to_string(vm7_pid) +
                        ") is gone: port freed (epoch 1 -> 2), 1 peer told");
}

TEST(Partlinkd, RefusesADuplicatePortAndBadHellos) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    FakeDevice a(1, "vm2");
    a.connect(daemon.socket());
    a.send_hello();
    expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME);

    FakeDevice dup(1, "vm9");
    dup.connect(daemon.socket());
    dup.send_hello();
    EXPECT_EQ(refused(dup), "port 1 is taken by vm2 (pid " + std::to_string(::getpid()) + ")");
    EXPECT_TRUE(closed_by_daemon(dup));

    FakeDevice bad(2, "vm3");
    bad.msg.abi_version = 1;
    bad.connect(daemon.socket());
    bad.send_hello();
    EXPECT_EQ(refused(bad), "HELLO: ABI version 1, this partlinkd speaks " +
                                std::to_string(PARTLINK_ABI_VERSION));
    EXPECT_TRUE(closed_by_daemon(bad));

    FakeDevice no_fds(3, "vm4");
    no_fds.connect(daemon.socket());
    send_message(no_fds.sock.get(), make_hello(no_fds.msg, {}));
    EXPECT_THAT(refused(no_fds), HasSubstr("HELLO: 0 fds"));

    FakeDevice garbage(4, "vm5");
    garbage.connect(daemon.socket());
    const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_GT(::write(garbage.sock.get(), junk, sizeof(junk)), 0);
    EXPECT_THAT(refused(garbage), HasSubstr("at most 4096 allowed"));
    EXPECT_TRUE(closed_by_daemon(garbage));

    // A second message after WELCOME is a protocol error: refused, port freed.
    send_message(a.sock.get(), a.hello());
    EXPECT_EQ(refused(a), "unexpected HELLO: this device is already registered");
    EXPECT_TRUE(closed_by_daemon(a));
    daemon.wait_for_log("vm2 (port 1, pid " + std::to_string(::getpid()) + ") down");
    daemon.wait_for_log("refused vm9 (port 1, pid");
    daemon.wait_for_log("refused a device (pid " + std::to_string(::getpid()) +
                        "): HELLO: ABI version 1");

    // The daemon is still serving.
    FakeDevice later(6, "vm7");
    later.connect(daemon.socket());
    later.send_hello();
    expect<partlink_msg_welcome>(later, PARTLINK_MSG_WELCOME);
}

TEST(Partlinkd, SigtermLeavesTheSlotsAndRemovesTheSocket) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();
    FakeDevice a(0, "vm1");
    a.connect(daemon.socket());
    a.send_hello();
    expect<partlink_msg_welcome>(a, PARTLINK_MSG_WELCOME);
    int status = daemon.process().stop(SIGTERM);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_FALSE(std::filesystem::exists(daemon.socket()));
    EXPECT_THAT(daemon.log_text(), HasSubstr("partlinkd: SIGTERM: exiting"));
    auto segment = Segment::open_readonly(daemon.segment());
    EXPECT_EQ(segment.port(0).state, static_cast<std::uint32_t>(PARTLINK_PORT_UP));
    EXPECT_EQ(segment.port(0).epoch, 1u);
}

TEST(Partlinkd, RefusesASecondDaemonOnTheSameSocketOrSegment) {
    TempDir dir;
    Daemon daemon(dir);
    daemon.start();

    auto other =
        spawn({"--socket", daemon.socket(), "--segment", dir / "other.seg"}, dir / "second.log");
    int status = other.wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
    EXPECT_THAT(read_file(dir / "second.log"),
                HasSubstr("another partlinkd is already listening on " + daemon.socket().string()));

    auto third =
        spawn({"--socket", dir / "other.sock", "--segment", daemon.segment()}, dir / "third.log");
    status = third.wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1);
    EXPECT_THAT(read_file(dir / "third.log"),
                HasSubstr("another partlinkd is using the fabric segment"));
    EXPECT_TRUE(std::filesystem::exists(daemon.socket())) << "the first one's socket was removed";
    EXPECT_FALSE(daemon.process().exited());
}

int run_to_end(const std::vector<std::string>& args, const std::filesystem::path& log) {
    auto process = spawn(args, log);
    int status = process.wait();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Partlinkd, ExitStatusesAndMessages) {
    TempDir dir;
    EXPECT_EQ(run_to_end({}, dir / "none.log"), 2);
    EXPECT_THAT(read_file(dir / "none.log"), HasSubstr("--socket is required"));
    EXPECT_EQ(
        run_to_end({"--socket", dir / "s", "--segment", dir / "g", "--bogus"}, dir / "bogus.log"),
        2);
    EXPECT_THAT(read_file(dir / "bogus.log"), HasSubstr("see partlinkd --help"));
    EXPECT_EQ(run_to_end({"--help"}, dir / "help.log"), 0);
    EXPECT_THAT(read_file(dir / "help.log"), HasSubstr("--segment"));

    std::ofstream(dir / "bad.json") << R"({"networks": {"blue": ["vm1"], "red": ["vm1"]}})";
    EXPECT_EQ(
        run_to_end({"--socket", dir / "s", "--segment", dir / "g", "--config", dir / "bad.json"},
                   dir / "config.log"),
        1);
    EXPECT_THAT(read_file(dir / "config.log"),
                HasSubstr((dir / "bad.json").string() + ": partition vm1 is in network"));
    EXPECT_FALSE(std::filesystem::exists(dir / "g")) << "a bad config left a segment";

    std::ofstream(dir / "junk.seg") << "junk";
    EXPECT_EQ(run_to_end({"--socket", dir / "s", "--segment", dir / "junk.seg"}, dir / "seg.log"),
              1);
    EXPECT_THAT(read_file(dir / "seg.log"), HasSubstr("is not a partlink fabric segment"));
    EXPECT_FALSE(std::filesystem::exists(dir / "s")) << "no socket left after a failed start";

    std::string long_path(200, 'x');
    EXPECT_EQ(run_to_end({"--socket", dir / long_path, "--segment", dir / "g"}, dir / "long.log"),
              2);
    EXPECT_THAT(read_file(dir / "long.log"), HasSubstr("a unix socket path must be"));
}

// --- The hypervisor mailbox -------------------------------------------------

partlink_mbox_request mbox_request(std::uint32_t op, const std::string& target,
                                   std::int64_t value = 0, const std::string& donor = "") {
    partlink_mbox_request r{};
    r.op = htole32(op);
    // NUL-padded, not terminated: a 16-character name fills the field.
    std::memcpy(r.target, target.data(), std::min(target.size(), sizeof r.target));
    std::memcpy(r.donor, donor.data(), std::min(donor.size(), sizeof r.donor));
    r.value = htole64(static_cast<std::uint64_t>(value));
    return r;
}

partlink_mbox_request chart_report(const std::string& target) {
    auto r = mbox_request(PARTLINK_MBOX_OP_REPORT, target);
    r.velocity = htole64(1'120'000);
    r.trend = htole64(1'300'000);
    r.ewma = htole64(static_cast<std::uint64_t>(std::int64_t{-200'000}));
    r.lower_limit = htole64(static_cast<std::uint64_t>(std::int64_t{-150'000}));
    r.upper_limit = htole64(150'000);
    r.cpu = htole64(430'000);
    r.chart_state = htole32(PARTLINK_CHART_LOW);
    return r;
}

void send_mbox(FakeDevice& dev, std::uint32_t seq, const partlink_mbox_request& request) {
    partlink_msg_mbox_request m{};
    m.seq = seq;
    m.request = request;
    Message message;
    message.type = PARTLINK_MSG_MBOX_REQUEST;
    message.payload.resize(sizeof m);
    std::memcpy(message.payload.data(), &m, sizeof m);
    send_message(dev.sock.get(), message);
}

struct Answer {
    std::uint32_t seq = 0;
    std::uint32_t result = 0;
    std::int64_t value = 0;
    std::string reason;
};

Answer receive_answer(FakeDevice& dev) {
    const auto m = expect<partlink_msg_mbox_answer>(dev, PARTLINK_MSG_MBOX_ANSWER);
    EXPECT_EQ(m.pad, 0u);
    EXPECT_EQ(m.answer.reserved, 0u);
    return {m.seq, le32toh(m.answer.result), static_cast<std::int64_t>(le64toh(m.answer.value)),
            std::string(m.answer.reason, strnlen(m.answer.reason, sizeof m.answer.reason))};
}

// A device registered and welcomed, with the PEER_UPs that follow drained.
void register_device(FakeDevice& dev, const Daemon& daemon, int peers = 0) {
    dev.connect(daemon.socket());
    dev.send_hello();
    expect<partlink_msg_welcome>(dev, PARTLINK_MSG_WELCOME);
    for (int i = 0; i < peers; ++i)
        expect<partlink_msg_port>(dev, PARTLINK_MSG_PEER_UP);
}

const char* const kWlmConfig = R"({"networks": {"blue": ["vm1", "vm2", "vm3"]}, "wlm": "vm1"})";

TEST(PartlinkdMailbox, WithoutCapacityEveryRequestIsRefusedSayingWhy) {
    TempDir dir;
    Daemon daemon(dir, kWlmConfig);
    daemon.start();
    FakeDevice vm1(0, "vm1");
    register_device(vm1, daemon);
    send_mbox(vm1, 41, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'000'000));
    auto answer = receive_answer(vm1);
    EXPECT_EQ(answer.seq, 41u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_EQ(answer.value, 0);
    EXPECT_THAT(answer.reason, HasSubstr("capacity management is off"));
    send_mbox(vm1, 42, chart_report("vm2"));
    answer = receive_answer(vm1);
    EXPECT_EQ(answer.seq, 42u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    daemon.wait_for_log("vm1: mailbox request refused: capacity management is off");
    // The connection stays up.
    send_mbox(vm1, 43, mbox_request(PARTLINK_MBOX_OP_SET_MEMORY, "vm2", 512));
    EXPECT_EQ(receive_answer(vm1).seq, 43u);
}

TEST(PartlinkdMailbox, AMalformedMboxRequestClosesTheConnection) {
    TempDir dir;
    Daemon daemon(dir, kWlmConfig);
    daemon.start();

    // Before HELLO.
    FakeDevice early(0, "vm1");
    early.connect(daemon.socket());
    send_mbox(early, 1, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'000'000));
    EXPECT_EQ(refused(early), "expected HELLO, got MBOX_REQUEST");
    EXPECT_TRUE(closed_by_daemon(early));

    // The port is free again once the daemon logged it down.
    const std::string down = "vm1 (port 0, pid " + std::to_string(::getpid()) + ") down";
    int downs = 0;
    for (const std::size_t size :
         {std::size_t{0}, std::size_t{8}, sizeof(partlink_msg_mbox_request) - 1,
          sizeof(partlink_msg_mbox_request) + 1}) {
        FakeDevice vm1(0, "vm1");
        register_device(vm1, daemon);
        Message message;
        message.type = PARTLINK_MSG_MBOX_REQUEST;
        message.payload.assign(size, 0);
        send_message(vm1.sock.get(), message);
        EXPECT_EQ(refused(vm1), "MBOX_REQUEST of " + std::to_string(size) +
                                    " bytes (and 0 fds), expected 136 bytes and none");
        EXPECT_TRUE(closed_by_daemon(vm1));
        daemon.wait_for_log(down, ++downs);
    }

    // With an fd.
    FakeDevice vm1(0, "vm1");
    register_device(vm1, daemon);
    partlink_msg_mbox_request m{};
    m.request = mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'000'000);
    Message message;
    message.type = PARTLINK_MSG_MBOX_REQUEST;
    message.payload.resize(sizeof m);
    std::memcpy(message.payload.data(), &m, sizeof m);
    message.fds = {vm1.doorbell.get()};
    send_message(vm1.sock.get(), message);
    EXPECT_THAT(refused(vm1), HasSubstr("(and 1 fds)"));
    EXPECT_TRUE(closed_by_daemon(vm1));
    daemon.wait_for_log(down, ++downs);

    // An MBOX_ANSWER from a device is not for the daemon.
    FakeDevice again(0, "vm1");
    register_device(again, daemon);
    send_message(again.sock.get(), make_mbox_answer(5, partlink_mbox_answer{}));
    EXPECT_EQ(refused(again), "unexpected MBOX_ANSWER: this device is already registered");
}

bool skip_allowed() {
    const char* allow = std::getenv("PARTLINK_ALLOW_SKIP");
    return allow && *allow && std::string(allow) != "0";
}

// vm1..vm3 in real CPU cgroups of this host, under partlink/<run>/, at their
// entitlements, and the run's capacity.json; every group removed again,
// whatever the test did.
class RealCapacity {
public:
    explicit RealCapacity(const TempDir& dir) {
        controller_ = capacity::make_cpu_controller(capacity::detect_cpu_hierarchy());
        static int count = 0;
        run_ = "test-mbox-" + std::to_string(::getpid()) + "-" + std::to_string(++count);
        for (const auto& [name, cpus] : kEntitlements) {
            groups_.emplace(name, capacity::PartitionCgroup::create(controller_, run_, name));
            groups_.at(name).set_cap(capacity::CpuCap::from_cpus(cpus));
        }
        nlohmann::json cgroups = nlohmann::json::object();
        for (const auto& [name, group] : groups_)
            cgroups[name] = group.path().string();
        const nlohmann::json config = {
            {"host_cpus", 2},
            {"policy",
             {{"privileged", "vm1"},
              {"partitions",
               {{{"name", "vm1"}, {"entitlement", 0.5}, {"min", 0.1}, {"max", 1}},
                {{"name", "vm2"}, {"entitlement", 0.75}, {"min", 0.25}, {"max", 2}},
                {{"name", "vm3"}, {"entitlement", 0.75}, {"min", 0.5}, {"max", 1.5}}}}}},
            {"cgroups", cgroups},
            {"audit_log", (dir / "wlm-audit.jsonl").string()},
            {"chart_log", (dir / "wlm-chart.jsonl").string()}};
        file_ = dir / "capacity.json";
        std::ofstream(file_) << config.dump(2);
    }
    RealCapacity(const RealCapacity&) = delete;
    RealCapacity& operator=(const RealCapacity&) = delete;
    // The groups go with groups_ (PartitionCgroup removes its directory and
    // the run's when it is the last).

    const std::filesystem::path& file() const { return file_; }
    capacity::PartitionCgroup& group(const std::string& name) { return groups_.at(name); }

    // The group's quota in microseconds per 100 ms period, read from the file
    // the kernel enforces.
    std::int64_t quota(const std::string& name) {
        const auto& dir = groups_.at(name).path();
        if (controller_->version() == capacity::CgroupVersion::v1) {
            EXPECT_EQ(std::stoll(read_file(dir / "cpu.cfs_period_us")), 100'000);
            return std::stoll(read_file(dir / "cpu.cfs_quota_us"));
        }
        const auto cap = controller_->cap(dir);
        EXPECT_EQ(cap.period_us, 100'000u);
        return cap.quota_us ? static_cast<std::int64_t>(*cap.quota_us) : -1;
    }
    std::int64_t total() { return quota("vm1") + quota("vm2") + quota("vm3"); }

private:
    static constexpr std::pair<const char*, double> kEntitlements[] = {
        {"vm1", 0.5}, {"vm2", 0.75}, {"vm3", 0.75}};
    std::shared_ptr<capacity::CpuController> controller_;
    std::string run_;
    std::map<std::string, capacity::PartitionCgroup> groups_;
    std::filesystem::path file_;
};

// Real cgroups, or a failure (a skip with PARTLINK_ALLOW_SKIP) saying why.
class PartlinkdRealCapacity : public ::testing::Test {
protected:
    void SetUp() override {
        try {
            capacity_.emplace(dir_);
        } catch (const std::exception& e) {
            if (skip_allowed())
                GTEST_SKIP() << "cannot use this host's CPU cgroup: " << e.what();
            FAIL() << "cannot use this host's CPU cgroup: " << e.what()
                   << "\n(run the tests as root; PARTLINK_ALLOW_SKIP=1 skips this test instead)";
        }
        daemon_.emplace(dir_, kWlmConfig);
        daemon_->extra_args = {"--capacity", capacity_->file().string()};
        daemon_->start();
    }
    void TearDown() override {
        // The daemon goes first, then the groups.
        daemon_.reset();
        capacity_.reset();
    }

    std::vector<capacity::AuditRecord> audit() {
        const auto file = dir_ / "wlm-audit.jsonl";
        if (!std::filesystem::exists(file))
            return {};
        return capacity::read_audit_log(file).records;
    }

    TempDir dir_;
    std::optional<RealCapacity> capacity_;
    std::optional<Daemon> daemon_;
};

TEST_F(PartlinkdRealCapacity, SetCpuShiftsRealCgroupCapsAndIsAudited) {
    daemon_->wait_for_log("capacity pool taken over from the cgroups' caps, total 2");
    FakeDevice vm1(0, "vm1");
    register_device(vm1, *daemon_);
    ASSERT_EQ(capacity_->total(), 200'000);

    send_mbox(vm1, 7, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'000'000, "vm3"));
    auto answer = receive_answer(vm1);
    EXPECT_EQ(answer.seq, 7u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED)) << answer.reason;
    EXPECT_EQ(answer.value, 1'000'000);
    EXPECT_EQ(answer.reason, "vm2 0.75 CPU -> 1 CPU, taken from vm3 0.25 CPU");
    EXPECT_EQ(capacity_->quota("vm2"), 100'000);
    EXPECT_EQ(capacity_->quota("vm3"), 50'000) << "the donor";
    EXPECT_EQ(capacity_->quota("vm1"), 50'000) << "not the donor";
    EXPECT_EQ(capacity_->total(), 200'000);

    auto records = audit();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].from, "vm1");
    EXPECT_EQ(records[0].target, "vm2");
    EXPECT_EQ(records[0].donor, "vm3");
    EXPECT_EQ(records[0].result, capacity::AuditResult::applied);
    ASSERT_TRUE(records[0].verification);
    EXPECT_TRUE(records[0].verification->ok);

    // Beyond vm2's maximum, from the others: clamped, the total kept.
    send_mbox(vm1, 8, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 3'000'000));
    answer = receive_answer(vm1);
    EXPECT_EQ(answer.seq, 8u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_CLAMPED)) << answer.reason;
    EXPECT_EQ(answer.value, 1'400'000) << answer.reason;
    EXPECT_THAT(answer.reason, HasSubstr("3 CPU is above vm2's maximum, 2 CPU"));
    EXPECT_EQ(capacity_->quota("vm2"), 140'000);
    EXPECT_EQ(capacity_->quota("vm1"), 10'000);
    EXPECT_EQ(capacity_->quota("vm3"), 50'000);
    EXPECT_EQ(capacity_->total(), 200'000);

    // Refused: nothing changes, and it is audited all the same.
    send_mbox(vm1, 9, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", -5));
    answer = receive_answer(vm1);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_EQ(answer.value, 1'400'000) << "vm2's cap now";
    EXPECT_EQ(capacity_->quota("vm2"), 140'000);
    records = audit();
    ASSERT_EQ(records.size(), 3u);
    EXPECT_EQ(records[2].result, capacity::AuditResult::refused);
    daemon_->wait_for_log("vm1: mailbox request refused: cpu -5e-06 must be positive");
}

TEST_F(PartlinkdRealCapacity, AnotherPartitionIsRefusedAndLogged) {
    FakeDevice vm1(0, "vm1"), vm2(1, "vm2");
    register_device(vm1, *daemon_);
    register_device(vm2, *daemon_, 1);
    expect<partlink_msg_port>(vm1, PARTLINK_MSG_PEER_UP);
    send_mbox(vm2, 3, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 2'000'000));
    const auto answer = receive_answer(vm2);
    EXPECT_EQ(answer.seq, 3u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_EQ(answer.reason, "partition vm2 is not the WLM partition: only vm1 may send requests");
    EXPECT_EQ(capacity_->quota("vm2"), 75'000);
    EXPECT_EQ(capacity_->total(), 200'000);
    const auto records = audit();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].from, "vm2");
    EXPECT_EQ(records[0].result, capacity::AuditResult::refused);
    daemon_->wait_for_log("vm2: mailbox request refused: partition vm2 is not the WLM partition");

    // Nor may it send a REPORT; it stays connected.
    send_mbox(vm2, 4, chart_report("vm2"));
    EXPECT_EQ(receive_answer(vm2).result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_TRUE(capacity::read_chart_log(dir_ / "wlm-chart.jsonl").records.empty());
    EXPECT_TRUE(quiet(vm1.sock.get(), 50));
}

TEST_F(PartlinkdRealCapacity, ReportWritesAChartLine) {
    FakeDevice vm1(0, "vm1");
    register_device(vm1, *daemon_);
    send_mbox(vm1, 100, chart_report("vm3"));
    const auto answer = receive_answer(vm1);
    EXPECT_EQ(answer.seq, 100u);
    EXPECT_EQ(answer.result, static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    EXPECT_EQ(answer.reason, "recorded");
    const auto chart = capacity::read_chart_log(dir_ / "wlm-chart.jsonl");
    EXPECT_TRUE(chart.problems.empty());
    ASSERT_EQ(chart.records.size(), 1u);
    EXPECT_EQ(chart.records[0].from, "vm1");
    EXPECT_EQ(chart.records[0].partition, "vm3");
    EXPECT_DOUBLE_EQ(chart.records[0].velocity.value(), 1.12);
    EXPECT_DOUBLE_EQ(chart.records[0].cpu.value(), 0.43);
    EXPECT_EQ(chart.records[0].state, capacity::ChartState::low);
    EXPECT_EQ(capacity_->total(), 200'000);
    EXPECT_TRUE(audit().empty());
}

TEST_F(PartlinkdRealCapacity, RequestsInFlightAreAnsweredInOrder) {
    FakeDevice vm1(0, "vm1");
    register_device(vm1, *daemon_);
    // A device that gave up on requests sends the next ones at once.
    send_mbox(vm1, 10, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'000'000));
    send_mbox(vm1, 11, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm3", 1'000'000));
    send_mbox(vm1, 12, chart_report("vm2"));
    send_mbox(vm1, 13, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 500'000));
    // Beyond 4 in flight: refused at once (it may also have been handled,
    // if the worker was quick).
    send_mbox(vm1, 14, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 900'000));
    std::vector<Answer> answers;
    for (int i = 0; i < 5; ++i)
        answers.push_back(receive_answer(vm1));
    std::vector<std::uint32_t> seqs;
    for (const auto& a : answers)
        if (a.seq != 14)
            seqs.push_back(a.seq);
    EXPECT_EQ(seqs, (std::vector<std::uint32_t>{10, 11, 12, 13}));
    for (const auto& a : answers) {
        if (a.seq != 14) {
            EXPECT_NE(a.result, static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED)) << a.reason;
        }
    }
    EXPECT_TRUE(quiet(vm1.sock.get()));
    EXPECT_EQ(capacity_->total(), 200'000);
}

TEST_F(PartlinkdRealCapacity, CapsSurviveARestartAndAReregistration) {
    FakeDevice vm1(0, "vm1");
    register_device(vm1, *daemon_);
    send_mbox(vm1, 1, mbox_request(PARTLINK_MBOX_OP_SET_CPU, "vm2", 1'200'000));
    ASSERT_EQ(receive_answer(vm1).result, static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    ASSERT_EQ(capacity_->quota("vm2"), 120'000);

    // A new partlinkd takes the caps over from the cgroups.
    daemon_->process().stop(SIGTERM);
    daemon_->start();
    daemon_->wait_for_log("capacity pool taken over from the cgroups' caps", 2);

    // vm2's QEMU restarted in a group at its entitlement: its registration
    // gives it the pool's cap again.
    capacity_->group("vm2").set_cap(capacity::CpuCap::from_cpus(0.75));
    FakeDevice vm2(1, "vm2");
    register_device(vm2, *daemon_);
    daemon_->wait_for_log("vm2's cgroup set to its pool cap, 1.2 CPU");
    EXPECT_EQ(capacity_->quota("vm2"), 120'000);
    EXPECT_EQ(capacity_->total(), 200'000);
}

TEST(PartlinkdMailbox, CapacityConfigProblemsStopTheStart) {
    TempDir dir;
    std::ofstream(dir / "fabric.json") << kWlmConfig;
    EXPECT_EQ(run_to_end({"--socket", dir / "s", "--segment", dir / "g", "--config",
                          dir / "fabric.json", "--capacity", dir / "missing.json"},
                         dir / "missing.log"),
              1);
    EXPECT_THAT(
        read_file(dir / "missing.log"),
        HasSubstr("cannot read the capacity configuration " + (dir / "missing.json").string()));
    std::ofstream(dir / "bad.json") << R"({"host_cpus": 2})";
    EXPECT_EQ(run_to_end({"--socket", dir / "s", "--segment", dir / "g", "--config",
                          dir / "fabric.json", "--capacity", dir / "bad.json"},
                         dir / "bad.log"),
              2)
        << "a policy mistake is a usage error";
    EXPECT_THAT(read_file(dir / "bad.log"), HasSubstr("'policy' is required"));
    EXPECT_FALSE(std::filesystem::exists(dir / "g")) << "a bad capacity config left a segment";
}

} // namespace
