// partlinkd as the launcher sees it: its command line, the fabric.json `up`
// writes, waiting until it listens, and `down` stopping it.  A shell script
// stands in for the daemon.
#include <fstream>
#include <iterator>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config.hpp"
#include "error.hpp"
#include "host/process.hpp"
#include "partlink/partlink_abi.h"
#include "run/partlinkd_control.hpp"
#include "run/run_dir.hpp"
#include "run/teardown.hpp"

using namespace partlink;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class TempRun : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "partlink-pld-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        dir_.emplace(RunDir::open(tmpl));
        // The fake daemons wait on it: a shell that forked a `sleep` would
        // show, for a moment, a child with the same command line.
        fifo_ = dir_->path() / "hold";
        ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    }
    void TearDown() override {
        if (dir_) {
            std::error_code ec;
            fs::remove_all(dir_->path(), ec);
        }
    }

    // /bin/sh running `script` as "partlinkd --socket RUN/partlinkd.sock ...":
    // $1 is --socket, $2 the socket.
    Process fake_daemon(const std::string& script, bool log = true) {
        std::vector<std::string> argv = {"/bin/sh", "-c", script};
        auto args = partlinkd_argv("partlinkd", dir().partlinkd_socket(), dir().fabric_segment(),
                                   dir().fabric_config());
        argv.insert(argv.end(), args.begin(), args.end());
        SpawnOptions spawn;
        if (log)
            spawn.output_file = dir().partlinkd_log();
        Process p = Process::spawn(argv, spawn);
        // Until the shell runs, /proc/PID/cmdline is still ours.
        for (int i = 0; i < 200 && !p.poll() && !is_our_partlinkd(p.pid(), dir().path()); ++i)
            std::this_thread::sleep_for(10ms);
        return p;
    }

    const RunDir& dir() const { return *dir_; }

    // Blocks for ever in the shell's `read` builtin, without forking.
    std::string hold() const { return "exec 3<>'" + fifo_.string() + "'; read x <&3"; }
    // Listens on the socket ($2), as partlinkd does once it serves: a child
    // holds the listening socket (and leaves with the shell), while the
    // shell keeps partlinkd's command line for the /proc scans.
    std::string listens() const {
        return "/usr/bin/python3 -c 'import os, socket, sys, time; parent = int(sys.argv[2]); s = "
               "socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
               "while os.getppid() == parent: time.sleep(0.05)' \"$2\" $$ & " +
               hold();
    }
    // Says so once the trap is set: a TERM before that would still kill it.
    std::string ignores_term() const {
        return "trap '' TERM; echo 'partlinkd: ignoring TERM'; " + hold();
    }

private:
    std::optional<RunDir> dir_;
    fs::path fifo_;
};

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST(Partlinkd, Argv) {
    EXPECT_EQ(
        partlinkd_argv("/b/bin/partlinkd", "/R/partlinkd.sock", "/R/fabric", "/R/fabric.json"),
        (std::vector<std::string>{"/b/bin/partlinkd", "--socket", "/R/partlinkd.sock", "--segment",
                                  "/R/fabric", "--config", "/R/fabric.json"}));
}

TEST(Partlinkd, ArgvWithCapacity) {
    EXPECT_EQ(partlinkd_argv("/b/bin/partlinkd", "/R/partlinkd.sock", "/R/fabric", "/R/fabric.json",
                             fs::path("/R/capacity.json")),
              (std::vector<std::string>{"/b/bin/partlinkd", "--socket", "/R/partlinkd.sock",
                                        "--segment", "/R/fabric", "--config", "/R/fabric.json",
                                        "--capacity", "/R/capacity.json"}));
    EXPECT_EQ(partlinkd_argv("p", "/R/s", "/R/f", "/R/c", std::nullopt).size(), 7u);
}

TEST(Partlinkd, DefaultFabricConfigNamesThePolicysWlmPartition) {
    auto config = fabric::Config::parse(default_fabric_config(3, "vm2"), "fabric.json");
    EXPECT_EQ(config.wlm(), "vm2");
    EXPECT_EQ(config.flags_of("vm2"), PARTLINK_PORT_WLM);
    EXPECT_EQ(config.flags_of("vm1"), 0u);
}

TEST(Partlinkd, DefaultFabricConfig) {
    auto doc = nlohmann::json::parse(default_fabric_config(3));
    EXPECT_EQ(doc, nlohmann::json::parse(
                       R"({"networks": {"default": ["vm1", "vm2", "vm3"]}, "wlm": "vm1"})"));
    EXPECT_EQ(nlohmann::json::parse(default_fabric_config(1))["networks"]["default"],
              nlohmann::json::array({"vm1"}));
    EXPECT_EQ(nlohmann::json::parse(default_fabric_config(16))["networks"]["default"].size(), 16u);
    // What partlinkd makes of it: one network of all, vm1 the WLM.
    auto config = fabric::Config::parse(default_fabric_config(3), "fabric.json");
    EXPECT_TRUE(config.has_networks());
    EXPECT_EQ(config.network_of("vm1"), config.network_of("vm3"));
    EXPECT_FALSE(config.network_of("vm4"));
    EXPECT_EQ(config.wlm(), "vm1");
    EXPECT_EQ(config.flags_of("vm1"), PARTLINK_PORT_WLM);
    EXPECT_EQ(config.flags_of("vm2"), 0u);
}

TEST(Partlinkd, RecognizedBySocketOfTheRunDir) {
    const fs::path run = "/w/run";
    EXPECT_TRUE(cmdline_is_our_partlinkd(
        {"/b/partlinkd", "--socket", "/w/run/partlinkd.sock", "--segment", "/w/run/fabric"}, run));
    EXPECT_TRUE(cmdline_is_our_partlinkd({"partlinkd", "--socket=/w/run/partlinkd.sock"}, run));
    EXPECT_TRUE(cmdline_is_our_partlinkd({"partlinkd", "--socket", "/w/run/partlinkd.sock"},
                                         "/w/run/")); // trailing slash in the dir
    // Another run dir, a QEMU naming the socket in its -chardev, nothing.
    EXPECT_FALSE(
        cmdline_is_our_partlinkd({"partlinkd", "--socket", "/w/run2/partlinkd.sock"}, run));
    EXPECT_FALSE(
        cmdline_is_our_partlinkd({"partlinkd", "--socket", "/x/w/run/partlinkd.sock"}, run));
    EXPECT_FALSE(cmdline_is_our_partlinkd(
        {"qemu-system-x86_64", "-chardev", "socket,id=fabric,path=/w/run/partlinkd.sock"}, run));
    EXPECT_FALSE(cmdline_is_our_partlinkd({"partlinkd", "--socket"}, run));
    EXPECT_FALSE(cmdline_is_our_partlinkd({}, run));
}

TEST_F(TempRun, WaitsUntilTheSocketAccepts) {
    Process d = fake_daemon("sleep 0.3; " + listens());
    auto started = std::chrono::steady_clock::now();
    wait_until_listening(d, dir().partlinkd_log(), dir().partlinkd_socket(), 5s);
    EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
    EXPECT_FALSE(d.poll());
}

TEST_F(TempRun, EarlyExitShowsTheLog) {
    Process d = fake_daemon("echo 'partlinkd: error: fabric.json: unknown key \"netwrks\"' >&2; "
                            "exit 1");
    std::string what = error_of(
        [&] { wait_until_listening(d, dir().partlinkd_log(), dir().partlinkd_socket(), 5s); });
    EXPECT_NE(what.find("partlinkd exited with status 1 before it listened"), std::string::npos)
        << what;
    EXPECT_NE(what.find("unknown key \"netwrks\""), std::string::npos) << what;
    EXPECT_NE(what.find(dir().partlinkd_log().string()), std::string::npos) << what;
}

TEST_F(TempRun, TimeoutShowsTheLog) {
    Process d = fake_daemon("echo 'partlinkd: thinking'; " + hold());
    std::string what = error_of(
        [&] { wait_until_listening(d, dir().partlinkd_log(), dir().partlinkd_socket(), 300ms); });
    EXPECT_NE(what.find("did not listen on " + dir().partlinkd_socket().string()),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("partlinkd: thinking"), std::string::npos) << what;
}

TEST_F(TempRun, InterruptCheckRuns) {
    Process d = fake_daemon(hold());
    std::string what = error_of([&] {
        wait_until_listening(d, dir().partlinkd_log(), dir().partlinkd_socket(), 5s,
                             [] { throw Error("interrupted"); });
    });
    EXPECT_EQ(what, "interrupted");
}

TEST_F(TempRun, StopTermThenKill) {
    Process polite = fake_daemon(listens());
    Process stubborn = fake_daemon(ignores_term());
    for (int i = 0; i < 500; ++i) {
        std::ifstream log(dir().partlinkd_log());
        std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        if (text.find("ignoring TERM") != std::string::npos)
            break;
        std::this_thread::sleep_for(10ms);
    }
    auto found = find_our_partlinkds(dir(), std::nullopt);
    EXPECT_EQ(found.size(), 2u);
    auto outcomes = stop_partlinkds(found, dir().path(), 500ms, 2s);
    ASSERT_EQ(outcomes.size(), 2u);
    for (const auto& o : outcomes) {
        EXPECT_TRUE(o.stopped) << o.pid << " " << o.how;
        EXPECT_EQ(o.how, o.pid == polite.pid() ? "SIGTERM" : "SIGKILL");
    }
    EXPECT_EQ(polite.wait().signal, SIGTERM);
    EXPECT_EQ(stubborn.wait().signal, SIGKILL);
    EXPECT_TRUE(find_our_partlinkds(dir(), std::nullopt).empty());
    // A pid that is not (or no longer) ours is left alone.
    auto again = stop_partlinkds({polite.pid(), ::getpid()}, dir().path());
    for (const auto& o : again)
        EXPECT_EQ(o.how, "already gone");
}

TEST_F(TempRun, DownStopsPartlinkdAndRemovesItsFiles) {
    Process d = fake_daemon(listens());
    wait_until_listening(d, dir().partlinkd_log(), dir().partlinkd_socket(), 5s);
    RunState s;
    s.run_dir = dir().path();
    s.created = "2026-01-01T00:00:00Z";
    s.settings = {1, 512, 1, Accel::Tcg, Accel::Tcg, NetMode::Partlink, {}, 180};
    s.partlinkd = DaemonRecord{d.pid(), dir().partlinkd_socket(), dir().fabric_segment(),
                               dir().fabric_config(), dir().partlinkd_log()};
    dir().save_state(s);
    for (const fs::path& p :
         {dir().partlinkd_socket(), dir().fabric_segment(), dir().fabric_config()})
        std::ofstream(p) << "x";

    Leftovers left = find_leftovers(dir());
    EXPECT_EQ(left.live_daemons, std::vector<pid_t>{d.pid()});
    EXPECT_TRUE(left.any());

    TeardownReport r = tear_down(dir(), Output::silent());
    EXPECT_TRUE(r.errors.empty()) << r.errors.front();
    EXPECT_EQ(r.daemons_stopped, 1);
    EXPECT_TRUE(r.did_anything());
    EXPECT_EQ(d.wait().signal, SIGTERM);
    EXPECT_FALSE(fs::exists(dir().partlinkd_socket()));
    EXPECT_FALSE(fs::exists(dir().fabric_segment()));
    EXPECT_FALSE(fs::exists(dir().state_file()));
    // Kept for post-mortems.
    EXPECT_TRUE(fs::exists(dir().partlinkd_log()));
    EXPECT_TRUE(fs::exists(dir().fabric_config()));
}

TEST_F(TempRun, DownFindsPartlinkdWithoutState) {
    // A launcher killed before it wrote the daemon's pid: the /proc scan finds it.
    Process d = fake_daemon(listens());
    TeardownReport r = tear_down(dir(), Output::silent());
    EXPECT_EQ(r.daemons_stopped, 1);
    EXPECT_TRUE(r.errors.empty());
    EXPECT_TRUE(d.wait_for(1s));
    EXPECT_TRUE(find_leftovers(dir()).live_daemons.empty());
}
