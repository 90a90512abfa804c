#include <filesystem>
#include <fstream>
#include <signal.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "error.hpp"
#include "host/process.hpp"

using namespace partlink;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(Process, ExitStatuses) {
    EXPECT_TRUE(Process::spawn({"true"}).wait().success());
    ExitStatus s = Process::spawn({"sh", "-c", "exit 3"}).wait();
    EXPECT_EQ(s.code, 3);
    EXPECT_EQ(s.describe(), "exited with status 3");
}

TEST(Process, MissingProgram) {
    EXPECT_THROW(Process::spawn({"/nonexistent/program"}), Error);
}

TEST(Process, OutputGoesToTheFile) {
    fs::path log = fs::temp_directory_path() / ("partlink-test-" + std::to_string(getpid()));
    SpawnOptions o;
    o.output_file = log;
    Process::spawn({"sh", "-c", "echo out; echo err >&2"}, o).wait();
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text, "out\nerr\n");
    fs::remove(log);
}

TEST(Process, NewSession) {
    SpawnOptions o;
    o.new_session = true;
    Process p = Process::spawn({"sleep", "5"}, o);
    EXPECT_EQ(getsid(p.pid()), p.pid());
    EXPECT_NE(getsid(p.pid()), getsid(0));
}

TEST(Process, WaitForTimesOutThenTerminate) {
    Process p = Process::spawn({"sleep", "10"});
    EXPECT_FALSE(p.wait_for(50ms));
    ExitStatus s = p.terminate(2s);
    EXPECT_EQ(s.signal, SIGTERM);
    EXPECT_EQ(s.describe(), "killed by SIGTERM");
}

TEST(Process, TerminateEscalatesToKill) {
    Process p = Process::spawn({"sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"});
    std::this_thread::sleep_for(100ms); // let the trap be installed
    EXPECT_EQ(p.terminate(200ms).signal, SIGKILL);
}

TEST(Process, DestructorKillsAndReaps) {
    pid_t pid;
    {
        Process p = Process::spawn({"sleep", "10"});
        pid = p.pid();
    }
    EXPECT_NE(kill(pid, 0), 0); // gone, and reaped (a zombie would still accept signal 0)
}

TEST(Process, DetachLeavesItRunning) {
    pid_t pid;
    {
        Process p = Process::spawn({"sleep", "10"});
        pid = p.detach();
    }
    EXPECT_EQ(kill(pid, 0), 0);
    auto h = PidHandle::open(pid);
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->exited());
    EXPECT_TRUE(h->send_signal(SIGKILL));
    EXPECT_TRUE(h->wait_exit(2s));
    int status;
    waitpid(pid, &status, 0);
}

TEST(RunCommand, CapturesOutputAndStatus) {
    CommandResult r = run_command({"sh", "-c", "echo hello; echo oops >&2; exit 2"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_EQ(r.output, "hello\noops\n");
}

TEST(RunCommand, KillsAfterTimeout) {
    auto start = std::chrono::steady_clock::now();
    CommandResult r = run_command({"sleep", "10"}, 200ms);
    EXPECT_EQ(r.status.signal, SIGKILL);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(Proc, CmdlineAndPids) {
    auto self = read_cmdline(getpid());
    ASSERT_FALSE(self.empty());
    EXPECT_NE(self[0].find("test_process"), std::string::npos);
    EXPECT_TRUE(read_cmdline(999999999).empty());
    auto pids = list_pids();
    EXPECT_NE(std::find(pids.begin(), pids.end(), getpid()), pids.end());
}
