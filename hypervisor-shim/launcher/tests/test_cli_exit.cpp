// The partlink executable itself: exit statuses and messages of commands
// that need no QEMU and no guest.
#include <cstdlib>
#include <fstream>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/process.hpp"
#include "run/run_dir.hpp"
#include "run/state.hpp"

using namespace partlink;
namespace fs = std::filesystem;

namespace {

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        const char* bin = std::getenv("PARTLINK_BIN");
        if (!bin)
            GTEST_SKIP() << "PARTLINK_BIN not set (run through meson test)";
        bin_ = bin;
        std::string tmpl = (fs::temp_directory_path() / "partlink-cli-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        run_ = fs::canonical(tmpl);
        // Nothing here may depend on a real QEMU or real images.
        setenv("PARTLINK_QEMU", "/nonexistent/qemu-system-x86_64", 1);
        setenv("PARTLINK_IMAGES", "/nonexistent/images", 1);
        unsetenv("PARTLINK_RUN_DIR");
    }
    void TearDown() override {
        for (pid_t group : fake_groups_)
            ::kill(-group, SIGKILL);
        if (!run_.empty())
            fs::remove_all(run_);
    }

    CommandResult partlink(std::vector<std::string> args, bool with_run_dir = true) {
        std::vector<std::string> argv = {bin_};
        if (with_run_dir)
            argv.insert(argv.end(), {"--run-dir", run_.string()});
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }

    // Writes a state with two partitions whose QEMUs are long gone.
    void write_dead_state() { save_state(dead_state()); }
    void save_state(const RunState& s) { RunDir::open(run_).save_state(s); }

    RunState dead_state() {
        RunState s;
        s.run_dir = run_;
        s.created = "2026-01-01T00:00:00Z";
        s.settings = {2, 512, 1, Accel::Auto, Accel::Tcg, NetMode::VirtioSocket, {}, 180};
        for (int i = 1; i <= 2; ++i) {
            PartitionRecord p;
            p.name = vm_name(i);
            p.index = i;
            p.state = "running";
            p.ip = "10.77.0." + std::to_string(i);
            p.qemu_pid = 999999000 + i; // no such process
            p.ssh_port = 40000 + i;
            p.net = NetMode::VirtioSocket;
            s.partitions.push_back(p);
        }
        return s;
    }

    // A process that passes for vm2's QEMU of this run directory: named
    // qemu-system-x86_64 (a link to sh), with "-name vm2" and a file of the
    // run directory on its command line.  No QMP socket: `stop` has to
    // fall back to SIGTERM.
    Process fake_qemu(const std::string& name) {
        fs::create_directories(run_ / "fakebin");
        fs::path exe = run_ / "fakebin" / "qemu-system-x86_64";
        if (!fs::exists(exe))
            fs::create_symlink("/bin/sh", exe);
        SpawnOptions spawn;
        spawn.new_session = true; // its sleep is in its process group, for TearDown
        Process p = Process::spawn({exe.string(), "-c", "sleep 60; true", "-name",
                                    name + ",debug-threads=on",
                                    "file:" + (run_ / (name + ".console")).string()},
                                   spawn);
        fake_groups_.push_back(p.pid());
        return p;
    }

    std::vector<pid_t> fake_groups_;

    std::string bin_;
    fs::path run_;
};

std::size_t lines(const std::string& s) {
    return std::count(s.begin(), s.end(), '\n');
}

} // namespace

TEST_F(Cli, UsageErrorsExitTwoWithOneLine) {
    for (auto args : std::vector<std::vector<std::string>>{
             {"up", "--vms", "0"},
             {"up", "--fabric-config", "/nonexistent/fabric.json"},
             {"up", "--net", "virtio-tap", "--fabric-config", "/etc/hostname"},
             {"up", "--net", "virtio-socket", "--vms", "3"},
             {"up", "--mem", "lots"},
             {"up", "--accel", "xen"},
             {"frobnicate"},
             {},
             {"ssh"},
             {"start"},
             {"start", "vm0"},
             {"start", "vm1", "vm2"},
             {"start", "vm1", "--timeout", "0"},
             {"stop"},
             {"stop", "bogus"},
         }) {
        CommandResult r = partlink(args);
        std::string cmd;
        for (auto& a : args)
            cmd += a + " ";
        EXPECT_EQ(r.status.code, 2) << cmd << r.output;
        EXPECT_EQ(r.output.rfind("partlink: ", 0), 0u) << cmd << r.output;
        EXPECT_EQ(lines(r.output), 1u) << cmd << r.output;
    }
    EXPECT_EQ(partlink({"up", "--vms", "0"}).output, "partlink: --vms must be between 1 and 16\n");
}

TEST_F(Cli, HelpExitsZero) {
    CommandResult r = partlink({"--help"}, false);
    EXPECT_EQ(r.status.code, 0);
    EXPECT_NE(r.output.find("Examples"), std::string::npos);
    EXPECT_EQ(partlink({"up", "--help"}).status.code, 0);
}

TEST_F(Cli, MissingQemuSaysMakeQemu) {
    CommandResult r = partlink({"up", "--accel", "tcg"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("/nonexistent/qemu-system-x86_64"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("make qemu"), std::string::npos) << r.output;
}

TEST_F(Cli, NothingUp) {
    CommandResult r = partlink({"status"});
    EXPECT_EQ(r.status.code, 0);
    EXPECT_EQ(r.output, "partlink: nothing is up in " + run_.string() + "\n");

    r = partlink({"status", "--json"});
    EXPECT_EQ(r.status.code, 0);
    auto doc = nlohmann::json::parse(r.output);
    EXPECT_EQ(doc["run_dir"], run_.string());
    EXPECT_TRUE(doc["partitions"].is_array() && doc["partitions"].empty());

    r = partlink({"down"});
    EXPECT_EQ(r.status.code, 0);
    EXPECT_NE(r.output.find("nothing to stop"), std::string::npos) << r.output;

    r = partlink({"ssh", "vm1"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("nothing is up"), std::string::npos) << r.output;
}

TEST_F(Cli, DeadPartitions) {
    write_dead_state();
    CommandResult r = partlink({"status", "--json"});
    EXPECT_EQ(r.status.code, 0);
    auto doc = nlohmann::json::parse(r.output);
    ASSERT_EQ(doc["partitions"].size(), 2u);
    EXPECT_EQ(doc["partitions"][0]["state"], "dead");
    for (const char* key : {"name", "state", "ip", "qemu_pid", "accel", "ssh_port", "net", "mac"})
        EXPECT_TRUE(doc["partitions"][1].contains(key)) << key;

    r = partlink({"ssh", "vm9"});
    EXPECT_EQ(r.status.code, 2);
    EXPECT_EQ(r.output, "partlink: no partition named 'vm9' (partitions: vm1, vm2)\n");

    r = partlink({"ssh", "vm2", "--", "true"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("vm2 is not running"), std::string::npos) << r.output;

    r = partlink({"down"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_FALSE(fs::exists(run_ / "state.json"));
    r = partlink({"down"});
    EXPECT_NE(r.output.find("nothing to stop"), std::string::npos) << r.output;
}

TEST_F(Cli, CorruptStateStillComesDown) {
    std::ofstream(run_ / "state.json") << "{ this is not json";
    std::ofstream(run_ / "vm1.log") << "kept\n";
    CommandResult r = partlink({"status"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("corrupt"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("partlink down"), std::string::npos) << r.output;

    r = partlink({"down"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_NE(r.output.find("corrupt"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(run_ / "state.json"));
    EXPECT_TRUE(fs::exists(run_ / "vm1.log"));
}

TEST_F(Cli, StartAndStopNeedARunThatIsUp) {
    for (std::string cmd : {"start", "stop"}) {
        CommandResult r = partlink({cmd, "vm1"});
        EXPECT_EQ(r.status.code, 1) << r.output;
        EXPECT_EQ(r.output,
                  "partlink: nothing is up in " + run_.string() + "; run `partlink up` first\n");
        r = partlink({"--run-dir", (run_ / "never").string(), cmd, "vm1"}, false);
        EXPECT_EQ(r.status.code, 1) << r.output;
        EXPECT_NE(r.output.find("nothing is up"), std::string::npos) << r.output;
        EXPECT_FALSE(fs::exists(run_ / "never"));
    }
}

TEST_F(Cli, StartAndStopOfDeadPartitions) {
    write_dead_state();
    for (std::string cmd : {"start", "stop"}) {
        CommandResult r = partlink({cmd, "vm9"});
        EXPECT_EQ(r.status.code, 2) << r.output;
        EXPECT_EQ(r.output, "partlink: no partition named 'vm9' (partitions: vm1, vm2)\n");
    }

    // Stopping a partition whose QEMU is gone records it as stopped.
    CommandResult r = partlink({"stop", "vm2"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_NE(r.output.find("vm2 is not running (its QEMU is gone)"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("`partlink start vm2` boots it again"), std::string::npos) << r.output;
    auto doc = nlohmann::json::parse(partlink({"status", "--json"}).output);
    EXPECT_EQ(doc["partitions"][0]["state"], "dead");
    EXPECT_EQ(doc["partitions"][1]["state"], "stopped");
    r = partlink({"stop", "vm2"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_NE(r.output.find("vm2 is already stopped"), std::string::npos) << r.output;

    r = partlink({"ssh", "vm2", "--", "true"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("vm2 is not running (stopped by `partlink stop`)"), std::string::npos)
        << r.output;
    r = partlink({"ssh", "vm1", "--", "true"});
    EXPECT_EQ(r.status.code, 1);
    EXPECT_NE(r.output.find("`partlink start vm1` boots it again"), std::string::npos) << r.output;

    // Past the state's checks, `start` needs QEMU (and here there is none).
    r = partlink({"start", "vm2"});
    EXPECT_EQ(r.status.code, 1) << r.output;
    EXPECT_NE(r.output.find("make qemu"), std::string::npos) << r.output;
    doc = nlohmann::json::parse(partlink({"status", "--json"}).output);
    EXPECT_EQ(doc["partitions"][1]["state"], "stopped"); // untouched
}

TEST_F(Cli, StartRefusesARunningPartitionAndStopStopsIt) {
    Process vm2 = fake_qemu("vm2");
    RunState s = dead_state();
    s.partitions[1].qemu_pid = vm2.pid();
    save_state(s);
    const std::string pid = std::to_string(vm2.pid());

    CommandResult r = partlink({"start", "vm2"});
    EXPECT_EQ(r.status.code, 1) << r.output;
    EXPECT_EQ(r.output, "partlink: vm2 is running (pid " + pid +
                            "); stop it first with `partlink stop vm2`\n");
    auto doc = nlohmann::json::parse(partlink({"status", "--json"}).output);
    EXPECT_EQ(doc["partitions"][1]["state"], "running");

    // Found by its command line, even when the state does not name its pid.
    s.partitions[1].qemu_pid.reset();
    save_state(s);
    r = partlink({"start", "vm2"});
    EXPECT_EQ(r.status.code, 1) << r.output;
    EXPECT_NE(r.output.find("vm2 is running (pid " + pid + ")"), std::string::npos) << r.output;

    // Stopping vm1 (dead) leaves vm2 alone.
    r = partlink({"stop", "vm1"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_FALSE(vm2.poll()) << "stop vm1 stopped vm2";

    r = partlink({"stop", "vm2"});
    EXPECT_EQ(r.status.code, 0) << r.output;
    EXPECT_NE(r.output.find("vm2: QEMU pid " + pid + " stopped (SIGTERM)"), std::string::npos)
        << r.output;
    auto status = vm2.wait_for(std::chrono::seconds(5));
    ASSERT_TRUE(status) << "vm2's QEMU still runs";
    EXPECT_EQ(status->signal, SIGTERM);
    doc = nlohmann::json::parse(partlink({"status", "--json"}).output);
    EXPECT_EQ(doc["partitions"][1]["state"], "stopped");
    EXPECT_TRUE(doc["partitions"][1]["qemu_pid"].is_null());
    EXPECT_EQ(doc["partitions"][0]["state"], "stopped");
}
