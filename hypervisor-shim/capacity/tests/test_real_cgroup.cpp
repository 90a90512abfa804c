// The one test against this host's real CPU controller (cgroup v1 `cpu` on
// the development machine; cgroup v2 elsewhere): a busy child capped at 0.2
// CPU must be throttled and held near 0.2 CPU.
//
// It needs root (or a delegated hierarchy).  Where the cgroup is not
// writable it FAILS, because a green run that enforced nothing would hide
// exactly the problem this test is for; PARTLINK_ALLOW_SKIP=1 turns that
// into a loud skip for machines known not to allow it.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "cgroup.hpp"

namespace partlink::capacity {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono;

// A child that spins until killed; killed and reaped on destruction, and
// killed by the kernel if this test process dies first.
class BusyChild {
public:
    BusyChild() {
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent)
                _exit(1);
            volatile unsigned long spin = 0;
            for (;;)
                spin = spin + 1;
        }
    }
    ~BusyChild() {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
    BusyChild(const BusyChild&) = delete;
    BusyChild& operator=(const BusyChild&) = delete;
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
};

// Time the process has run, from /proc/PID/schedstat (ns, exact).
duration<double> cpu_time(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
    unsigned long long ns = 0;
    in >> ns;
    return nanoseconds(ns);
}

bool skip_allowed() {
    const char* allow = std::getenv("PARTLINK_ALLOW_SKIP");
    return allow && *allow && std::string(allow) != "0";
}

TEST(RealCgroup, CapsABusyChildAtPointTwoCpu) {
    std::shared_ptr<CpuController> controller;
    std::optional<PartitionCgroup> group;
    std::string problem;
    try {
        controller = make_cpu_controller(detect_cpu_hierarchy());
        group.emplace(
            PartitionCgroup::create_at(controller, "partlink-test-" + std::to_string(::getpid())));
    } catch (const std::exception& e) {
        problem = e.what();
    }
    if (!problem.empty()) {
        if (skip_allowed()) {
            std::fprintf(stderr,
                         "\n*** SKIPPING the real cgroup test (PARTLINK_ALLOW_SKIP is set): %s "
                         "***\n\n",
                         problem.c_str());
            GTEST_SKIP() << problem;
        }
        FAIL() << "cannot use this host's CPU cgroup: " << problem
               << "\n(run the tests as root; PARTLINK_ALLOW_SKIP=1 skips this test instead)";
    }
    std::printf("using %s at %s\n", std::string(to_string(controller->version())).c_str(),
                group->path().c_str());

    BusyChild child;
    group->move_pid(child.pid());
    EXPECT_EQ(controller->processes(group->path()), std::vector<pid_t>{child.pid()});
    group->set_cap(CpuCap::from_cpus(0.2));
    EXPECT_EQ(group->cap(), (CpuCap{20000, 100000}));

    // Let the first period with the new quota begin before measuring.
    std::this_thread::sleep_for(milliseconds(200));
    const auto stat_before = group->stat();
    const auto cpu_before = cpu_time(child.pid());
    const auto start = steady_clock::now();
    std::this_thread::sleep_for(seconds(1));
    const auto stat_after = group->stat();
    const auto cpu_after = cpu_time(child.pid());
    const duration<double> elapsed = steady_clock::now() - start;

    const double used = (cpu_after - cpu_before) / elapsed;
    const auto throttled = stat_after.nr_throttled - stat_before.nr_throttled;
    std::printf("child used %.3f CPU over %.2f s; %llu of %llu periods throttled, %lld us\n", used,
                elapsed.count(), static_cast<unsigned long long>(throttled),
                static_cast<unsigned long long>(stat_after.nr_periods - stat_before.nr_periods),
                static_cast<long long>((stat_after.throttled - stat_before.throttled).count()));
    // About 10 periods of 100 ms in the window, nearly all throttled.
    EXPECT_GE(throttled, 5u);
    EXPECT_GT(stat_after.throttled, stat_before.throttled);
    // Loose: the host is shared, so the child may get less than its cap, but
    // never much more.
    EXPECT_LT(used, 0.3);
    EXPECT_GT(used, 0.02);

    // Removing the group while the child still runs moves it out first.
    const auto path = group->path();
    group->remove();
    EXPECT_FALSE(fs::exists(path));
    EXPECT_EQ(::kill(child.pid(), 0), 0) << "the child should survive the group's removal";
}

} // namespace
} // namespace partlink::capacity
