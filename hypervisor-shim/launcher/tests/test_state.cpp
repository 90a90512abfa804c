#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "fake_cgroup.hpp"
#include "run/run_dir.hpp"
#include "run/state.hpp"

using namespace partlink;
namespace fs = std::filesystem;
using partlink::capacity::testing::TempDir;

namespace {

RunState sample_state() {
    RunState s;
    s.run_dir = "/tmp/run";
    s.created = "2026-01-02T03:04:05Z";
    s.launcher_pid = 4242;
    s.settings = {2, 512, 1, Accel::Auto, Accel::Tcg, NetMode::VirtioTap, 10022, 180};
    s.bridge = "plbr123abc";
    for (int i = 1; i <= 2; ++i) {
        PartitionRecord p;
        p.name = vm_name(i);
        p.index = i;
        p.state = i == 1 ? "running" : "starting";
        p.ip = "10.77.0." + std::to_string(i);
        p.mac = "02:70:6c:01:00:0" + std::to_string(i);
        p.mgmt_mac = "52:54:00:a0:00:0" + std::to_string(i);
        p.partlink_mac = "02:70:6c:00:00:0" + std::to_string(i);
        if (i == 1)
            p.qemu_pid = 1234;
        p.ssh_port = 10021 + i;
        p.console = "/tmp/run/vm" + std::to_string(i) + ".console";
        p.log = "/tmp/run/vm" + std::to_string(i) + ".log";
        p.qmp = "/tmp/run/vm" + std::to_string(i) + ".qmp";
        p.pidfile = "/tmp/run/vm" + std::to_string(i) + ".pid";
        p.taps = {"plt123abcv" + std::to_string(i)};
        s.partitions.push_back(p);
    }
    return s;
}

std::string corrupt_reason(const std::string& text) {
    try {
        parse_state(text);
    } catch (const StateCorrupt& e) {
        return e.reason();
    }
    return "(parsed)";
}

} // namespace

TEST(State, RoundTrip) {
    RunState s = sample_state();
    RunState back = parse_state(serialize_state(s));
    EXPECT_EQ(serialize_state(back), serialize_state(s));
    EXPECT_EQ(back.partitions.size(), 2u);
    EXPECT_EQ(back.partitions[0].qemu_pid, 1234);
    EXPECT_FALSE(back.partitions[1].qemu_pid);
    EXPECT_EQ(back.settings.ssh_port_base, 10022);
    EXPECT_EQ(back.settings.accel, Accel::Tcg);
    EXPECT_EQ(*back.bridge, "plbr123abc");
}

TEST(State, BootRecordRoundTrips) {
    RunState s = sample_state();
    s.boot.options.kernel = "/src/linux";
    s.boot.options.append = "loglevel=7";
    s.boot.options.shares = {{"/src", "src", true}};
    s.boot.options.gdb = true;
    s.boot.options.qemu_args = {{2, {"-d", "guest_errors"}}};
    s.boot.kernel = "/B/kernels/6.1.0-x/bzImage";
    s.boot.initrd = "/B/kernels/6.1.0-x/initramfs.cpio.gz";
    s.boot.release = "6.1.0-x";
    s.boot.kdir = "/src/linux";
    s.partitions[0].gdb_port = 4321;
    RunState back = parse_state(serialize_state(s));
    EXPECT_EQ(back.boot.options, s.boot.options);
    EXPECT_EQ(back.boot.kernel, s.boot.kernel);
    EXPECT_EQ(back.boot.release, "6.1.0-x");
    EXPECT_EQ(back.partitions[0].gdb_port, 4321);
    EXPECT_FALSE(back.partitions[1].gdb_port);

    // A document from before the developer loop boots the image's kernel.
    auto doc = state_to_json(sample_state());
    doc.erase("boot");
    RunState old = state_from_json(nlohmann::json::parse(doc.dump()));
    EXPECT_TRUE(old.boot.kernel.empty());
    EXPECT_FALSE(old.boot.options.kernel);

    doc = state_to_json(s);
    doc["boot"]["gdb"] = "yes";
    EXPECT_THROW(state_from_json(nlohmann::json::parse(doc.dump())), StateCorrupt);
}

TEST(State, DocumentHasTheDocumentedFields) {
    nlohmann::ordered_json j = state_to_json(sample_state());
    EXPECT_EQ(j["version"], kStateVersion);
    EXPECT_EQ(j["bridge"], "plbr123abc");
    const auto& p = j["partitions"][0];
    for (const char* key : {"name", "index", "state", "ip", "mac", "qemu_pid", "ssh_port", "accel",
                            "net", "console", "log", "qmp", "taps"})
        EXPECT_TRUE(p.contains(key)) << key;
    EXPECT_TRUE(j["partitions"][1]["qemu_pid"].is_null());
}

TEST(State, PartlinkdRecord) {
    RunState s = sample_state();
    EXPECT_TRUE(state_to_json(s)["partlinkd"].is_null());
    EXPECT_FALSE(parse_state(serialize_state(s)).partlinkd);

    s.settings.net = NetMode::Partlink;
    s.partlinkd = DaemonRecord{4321, "/tmp/run/partlinkd.sock", "/tmp/run/fabric",
                               "/tmp/run/fabric.json", "/tmp/run/partlinkd.log"};
    RunState back = parse_state(serialize_state(s));
    ASSERT_TRUE(back.partlinkd);
    EXPECT_EQ(back.partlinkd->pid, 4321);
    EXPECT_EQ(back.partlinkd->socket, "/tmp/run/partlinkd.sock");
    EXPECT_EQ(back.partlinkd->segment, "/tmp/run/fabric");
    EXPECT_EQ(back.partlinkd->config, "/tmp/run/fabric.json");
    EXPECT_EQ(back.partlinkd->log, "/tmp/run/partlinkd.log");
    EXPECT_EQ(serialize_state(back), serialize_state(s));

    // Recorded before it is spawned: no pid yet.
    s.partlinkd->pid.reset();
    EXPECT_FALSE(parse_state(serialize_state(s)).partlinkd->pid);

    // A state from before partlinkd has no such field.
    nlohmann::ordered_json j = state_to_json(sample_state());
    j.erase("partlinkd");
    EXPECT_FALSE(parse_state(j.dump()).partlinkd);

    j = state_to_json(s);
    j["partlinkd"].erase("socket");
    EXPECT_EQ(corrupt_reason(j.dump()), "'partlinkd' missing field 'socket'");
    j = state_to_json(s);
    j["partlinkd"]["pid"] = "x";
    EXPECT_EQ(corrupt_reason(j.dump()), "'partlinkd.pid' is not an integer");
}

TEST(State, InterfacesTapsThenBridge) {
    RunState s = sample_state();
    EXPECT_EQ(s.interfaces(),
              (std::vector<std::string>{"plt123abcv1", "plt123abcv2", "plbr123abc"}));
    s.bridge.reset();
    s.partitions[1].taps.clear();
    EXPECT_EQ(s.interfaces(), std::vector<std::string>{"plt123abcv1"});
}

TEST(State, FindByName) {
    RunState s = sample_state();
    ASSERT_NE(s.find("vm2"), nullptr);
    EXPECT_EQ(s.find("vm2")->index, 2);
    EXPECT_EQ(s.find("vm3"), nullptr);
    EXPECT_EQ(s.names(), (std::vector<std::string>{"vm1", "vm2"}));
}

TEST(StateCorruption, NotJson) {
    EXPECT_NE(corrupt_reason("").find("not valid JSON"), std::string::npos);
    EXPECT_NE(corrupt_reason("{\"version\": 1, ").find("not valid JSON"), std::string::npos);
    EXPECT_NE(corrupt_reason("\x01\x02garbage").find("not valid JSON"), std::string::npos);
}

TEST(StateCorruption, TruncatedDocument) {
    std::string text = serialize_state(sample_state());
    for (std::size_t cut : {text.size() / 4, text.size() / 2, text.size() - 3})
        EXPECT_NE(corrupt_reason(text.substr(0, cut)), "(parsed)") << cut;
}

TEST(StateCorruption, WrongShape) {
    EXPECT_EQ(corrupt_reason("[]"), "the document is not a JSON object");
    EXPECT_EQ(corrupt_reason("{}"), "missing field 'version'");

    nlohmann::ordered_json j = state_to_json(sample_state());
    j["version"] = 99;
    EXPECT_NE(corrupt_reason(j.dump()).find("version 99"), std::string::npos);

    j = state_to_json(sample_state());
    j["partitions"][1]["ssh_port"] = "22";
    EXPECT_EQ(corrupt_reason(j.dump()), "'partitions[1].ssh_port' is not an integer");

    j = state_to_json(sample_state());
    j["partitions"][0].erase("qmp");
    EXPECT_EQ(corrupt_reason(j.dump()), "'partitions[0]' missing field 'qmp'");

    j = state_to_json(sample_state());
    j["partitions"][0]["accel"] = "hvf";
    EXPECT_EQ(corrupt_reason(j.dump()), "'partitions[0].accel' is not an accelerator");

    j = state_to_json(sample_state());
    j["partitions"][0]["name"] = "vm2";
    EXPECT_NE(corrupt_reason(j.dump()).find("does not match its index"), std::string::npos);

    j = state_to_json(sample_state());
    j["partitions"][1] = j["partitions"][0];
    EXPECT_NE(corrupt_reason(j.dump()).find("appears twice"), std::string::npos);

    j = state_to_json(sample_state());
    j["partitions"][0]["qemu_pid"] = -5;
    EXPECT_NE(corrupt_reason(j.dump()).find("out of range"), std::string::npos);

    j = state_to_json(sample_state());
    j["settings"] = 3;
    EXPECT_EQ(corrupt_reason(j.dump()), "'settings' is not an object");

    j = state_to_json(sample_state());
    j["partitions"][0]["taps"] = {1, 2};
    EXPECT_NE(corrupt_reason(j.dump()).find("not a string"), std::string::npos);
}

TEST(RunDirFiles, SaveLoadAndAbsence) {
    TempDir tmp;
    RunDir dir = RunDir::open(tmp.path() / "nested" / "run");
    EXPECT_TRUE(dir.path().is_absolute());
    EXPECT_FALSE(dir.load_state());
    RunState s = sample_state();
    dir.save_state(s);
    auto back = dir.load_state();
    ASSERT_TRUE(back);
    EXPECT_EQ(serialize_state(*back), serialize_state(s));
    // No temporary files are left behind.
    int files = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path()))
        ++files;
    EXPECT_EQ(files, 1);
}

TEST(RunDirFiles, CorruptFileIsReported) {
    TempDir tmp;
    RunDir dir = RunDir::open(tmp.path());
    std::ofstream(dir.state_file()) << "{\"version\": 1, \"run_dir\": ";
    EXPECT_THROW(dir.load_state(), StateCorrupt);
    std::ofstream(dir.state_file(), std::ios::trunc) << "";
    EXPECT_THROW(dir.load_state(), StateCorrupt);
}

TEST(RunDirFiles, PathsAndPidFiles) {
    TempDir tmp;
    RunDir dir = RunDir::open(tmp.path());
    EXPECT_EQ(dir.console_file(3).filename(), "vm3.console");
    EXPECT_EQ(dir.qmp_socket(3).filename(), "vm3.qmp");
    EXPECT_EQ(dir.partlinkd_socket(), dir.path() / "partlinkd.sock");
    EXPECT_EQ(dir.fabric_segment(), dir.path() / "fabric");
    EXPECT_EQ(dir.fabric_config(), dir.path() / "fabric.json");
    EXPECT_EQ(dir.partlinkd_log(), dir.path() / "partlinkd.log");
    for (const char* name : {"vm2.pid", "vm10.pid", "probe.pid", "vm2.log", "vmx.pid"})
        std::ofstream(dir.path() / name) << "1\n";
    EXPECT_EQ(dir.pid_file_indices(), (std::vector<int>{2, 10}));
}

TEST(RunDirFiles, SymlinkedPathIsResolved) {
    TempDir tmp;
    fs::create_directory(tmp.path() / "real");
    fs::create_directory_symlink(tmp.path() / "real", tmp.path() / "link");
    RunDir dir = RunDir::open(tmp.path() / "link");
    EXPECT_EQ(dir.path(), fs::canonical(tmp.path() / "real"));
}

TEST(RunDirLocking, ExclusiveExcludesEveryone) {
    TempDir tmp;
    RunDir dir = RunDir::open(tmp.path());
    {
        auto shared1 = RunDirLock::try_acquire(dir, RunDirLock::Mode::Shared);
        auto shared2 = RunDirLock::try_acquire(dir, RunDirLock::Mode::Shared);
        EXPECT_TRUE(shared1 && shared2);
        EXPECT_FALSE(RunDirLock::try_acquire(dir, RunDirLock::Mode::Exclusive));
    }
    auto excl = RunDirLock::try_acquire(dir, RunDirLock::Mode::Exclusive);
    ASSERT_TRUE(excl);
    EXPECT_FALSE(RunDirLock::try_acquire(dir, RunDirLock::Mode::Shared));
    try {
        RunDirLock::acquire_or_fail(dir, RunDirLock::Mode::Exclusive);
        FAIL() << "lock should be busy";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("another partlink command"), std::string::npos);
    }
}

TEST(Files, TailLines) {
    TempDir tmp;
    fs::path f = tmp.path() / "log";
    std::ofstream(f) << "one\r\ntwo\r\nthree\r\nfour";
    EXPECT_EQ(tail_lines(f, 2), "three\nfour\n");
    EXPECT_EQ(tail_lines(f, 10), "one\ntwo\nthree\nfour\n");
    std::ofstream(f, std::ios::trunc) << "";
    EXPECT_EQ(tail_lines(f, 3), "(empty)\n");
    EXPECT_NE(tail_lines(tmp.path() / "missing", 3).find("does not exist"), std::string::npos);
}
