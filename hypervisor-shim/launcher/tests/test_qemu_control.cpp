#include <filesystem>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "host/process.hpp"
#include "qemu/qemu_control.hpp"

using namespace partlink;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(OurQemu, RecognizedByArgv0AndRunDirArguments) {
    const fs::path run = "/work/build/run";
    EXPECT_TRUE(cmdline_is_our_qemu(
        {"/b/qemu-system-x86_64", "-serial", "file:/work/build/run/vm1.console"}, run));
    EXPECT_TRUE(cmdline_is_our_qemu(
        {"qemu-system-x86_64", "-qmp", "unix:/work/build/run/vm1.qmp,server=on,wait=off"}, run));
    EXPECT_TRUE(
        cmdline_is_our_qemu({"qemu-system-x86_64", "-pidfile", "/work/build/run/vm2.pid"}, run));
    EXPECT_TRUE(cmdline_is_our_qemu({"qemu-system-x86_64", "-bios", "/work/build/run/probe.bin"},
                                    "/work/build/run/")); // trailing slash in the dir
    // Another run dir whose path merely contains ours, or shares a prefix.
    EXPECT_FALSE(cmdline_is_our_qemu(
        {"qemu-system-x86_64", "-serial", "file:/x/work/build/run/vm1.console"}, run));
    EXPECT_FALSE(cmdline_is_our_qemu(
        {"qemu-system-x86_64", "-serial", "file:/work/build/run2/vm1.console"}, run));
    // Not QEMU, or nothing of ours.
    EXPECT_FALSE(cmdline_is_our_qemu({"vim", "/work/build/run/vm1.console"}, run));
    EXPECT_FALSE(cmdline_is_our_qemu({"/work/build/run/qemu-system-x86_64"}, run));
    EXPECT_FALSE(cmdline_is_our_qemu({}, run));
}

TEST(OurQemu, NameFromCmdline) {
    EXPECT_EQ(qemu_name_from_cmdline({"q", "-name", "vm3,debug-threads=on"}), "vm3");
    EXPECT_EQ(qemu_name_from_cmdline({"q", "-bios", "x"}), "qemu");
}

namespace {

// Sleeps on a pipe that nobody else writes: no child process per tick.
const std::string kIdleLoop = "exec 3<> <(:); while :; do read -t 0.05 -u 3; done";

// A stand-in for QEMU: bash under the name qemu-system-x86_64, with
// arguments that point into the run dir, optionally ignoring SIGTERM.
// It waits without forking: a forked child carries the same argv until
// it execs, and a scan at that moment would find two "QEMUs".
struct FakeQemu {
    fs::path dir;
    Process process;

    static FakeQemu start(const fs::path& dir, const std::string& script) {
        fs::path exe = dir / "qemu-system-x86_64";
        if (!fs::exists(exe))
            fs::create_symlink("/bin/bash", exe);
        Process p = Process::spawn({exe.string(), "-c", script, "-name", "vm1,debug-threads=on",
                                    "file:" + (dir / "vm1.console").string()});
        // Wait until the shell has started, so its cmdline is readable.
        for (int i = 0; i < 100 && read_cmdline(p.pid()).size() < 2; ++i)
            std::this_thread::sleep_for(10ms);
        std::this_thread::sleep_for(50ms);
        return FakeQemu{dir, std::move(p)};
    }
};

fs::path temp_run_dir() {
    std::string tmpl = (fs::temp_directory_path() / "partlink-qc-XXXXXX").string();
    if (!mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp");
    return fs::canonical(tmpl);
}

} // namespace

TEST(StopQemus, FindsByProcScanAndEscalates) {
    fs::path path = temp_run_dir();
    RunDir dir = RunDir::open(path);
    FakeQemu stubborn = FakeQemu::start(path, "trap '' TERM; " + kIdleLoop);

    auto found = find_our_qemus(dir, std::nullopt);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].pid, stubborn.process.pid());
    EXPECT_EQ(found[0].name, "vm1");
    EXPECT_TRUE(is_our_qemu(stubborn.process.pid(), path));

    StopTimings fast{200ms, 200ms, 2000ms};
    auto outcome = stop_qemus(found, path, fast);
    ASSERT_EQ(outcome.size(), 1u);
    EXPECT_TRUE(outcome[0].stopped);
    EXPECT_EQ(outcome[0].how, "SIGKILL"); // no QMP socket, SIGTERM ignored
    fs::remove_all(path);
}

TEST(StopQemus, PolitelyWhenItListens) {
    fs::path path = temp_run_dir();
    RunDir dir = RunDir::open(path);
    FakeQemu polite = FakeQemu::start(path, kIdleLoop);
    auto outcome = stop_qemus(find_our_qemus(dir, std::nullopt), path, {200ms, 2000ms, 2000ms});
    ASSERT_EQ(outcome.size(), 1u);
    EXPECT_TRUE(outcome[0].stopped);
    EXPECT_EQ(outcome[0].how, "SIGTERM");
    fs::remove_all(path);
}

TEST(StopQemus, IgnoresProcessesOfOtherRunDirs) {
    fs::path mine = temp_run_dir();
    fs::path other = temp_run_dir();
    FakeQemu theirs = FakeQemu::start(other, kIdleLoop);
    EXPECT_TRUE(find_our_qemus(RunDir::open(mine), std::nullopt).empty());
    EXPECT_EQ(find_our_qemus(RunDir::open(other), std::nullopt).size(), 1u);
    fs::remove_all(mine);
    fs::remove_all(other);
}
