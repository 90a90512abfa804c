// The partlink executable itself: exit statuses and messages of commands
// that need no QEMU and no guest.
#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "run_dir.hpp"
#include "state.hpp"

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
    void write_dead_state() {
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
        RunDir::open(run_).save_state(s);
    }

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
