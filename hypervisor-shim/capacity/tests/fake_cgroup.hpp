// Fake cgroup trees for the unit tests: real files in a temporary directory,
// laid out as cgroupfs would, with a GroupDirOps that plays the kernel's
// part of filling a new group with control files.
#pragma once

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cgroup.hpp"

namespace partlink::capacity::testing {

namespace fs = std::filesystem;

class TempDir {
public:
    TempDir() {
        std::string pattern = (fs::temp_directory_path() / "partlink-capacity-XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
        // Readable by all: one test drops privileges and must get as far as
        // the cgroup files themselves.
        fs::permissions(path_, fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

inline void write_file(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::trunc);
    out << text;
    if (!out)
        throw std::runtime_error("cannot write " + file.string());
}

inline std::string read_file(const fs::path& file) {
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The control files a new group gets, by version.
inline std::map<std::string, std::string> group_files(CgroupVersion version) {
    if (version == CgroupVersion::v2)
        return {{"cgroup.procs", ""},
                {"cgroup.type", "domain\n"},
                {"cgroup.controllers", "cpu memory pids\n"},
                {"cgroup.subtree_control", ""},
                {"cpu.max", "max 100000\n"},
                {"cpu.weight", "100\n"},
                {"cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\n"
                             "nr_throttled 0\nthrottled_usec 0\n"}};
    return {{"tasks", ""},
            {"cgroup.procs", ""},
            {"cpu.cfs_quota_us", "-1\n"},
            {"cpu.cfs_period_us", "100000\n"},
            {"cpu.shares", "1024\n"},
            {"cpu.stat", "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\n"
                         "burst_time 0\n"}};
}

class FakeGroupDirOps final : public GroupDirOps {
public:
    explicit FakeGroupDirOps(CgroupVersion version)
        : version_(version) {}

    void create(const fs::path& dir) override {
        if (fs::exists(dir))
            throw CgroupError("creating cgroup " + dir.string() + " failed: File exists");
        if (!fs::create_directory(dir))
            throw CgroupError("fake mkdir " + dir.string() + " failed");
        for (const auto& [name, text] : group_files(version_))
            write_file(dir / name, text);
        created.push_back(dir);
    }

    // Like rmdir on cgroupfs: refused while the group holds anything.
    void remove(const fs::path& dir) override {
        const char* list = version_ == CgroupVersion::v2 ? "cgroup.procs" : "tasks";
        if (read_file(dir / list).find_first_not_of(" \n") != std::string::npos)
            throw CgroupError("removing cgroup " + dir.string() +
                              " failed: Device or resource busy");
        for (const auto& entry : fs::directory_iterator(dir))
            if (entry.is_directory())
                throw CgroupError("removing cgroup " + dir.string() +
                                  " failed: Device or resource busy");
        fs::remove_all(dir);
        removed.push_back(dir);
    }

    std::vector<fs::path> created;
    std::vector<fs::path> removed;

private:
    CgroupVersion version_;
};

// A fake host: a hierarchy root with the root group's files, a fake /proc,
// and a controller over them.
struct FakeHost {
    explicit FakeHost(CgroupVersion version)
        : root(tmp.path() / (version == CgroupVersion::v2 ? "sys/fs/cgroup" : "sys/fs/cgroup/cpu"))
        , proc(tmp.path() / "proc")
        , ops(std::make_shared<FakeGroupDirOps>(version)) {
        for (const auto& [name, text] : group_files(version))
            write_file(root / name, text);
        if (version == CgroupVersion::v2)
            fs::remove(root / "cgroup.type"); // the root group has none
        fs::create_directories(proc);
        controller = make_cpu_controller({version, root}, {proc, ops});
    }

    // /proc/PID/task/TID for each thread, with a schedstat of `ns` each.
    void add_process(pid_t pid, const std::vector<pid_t>& tids, std::uint64_t ns = 0) {
        for (const pid_t tid : tids) {
            fs::create_directories(proc / std::to_string(pid) / "task" / std::to_string(tid));
            write_file(proc / std::to_string(tid) / "schedstat", std::to_string(ns) + " 0 0\n");
        }
    }

    TempDir tmp;
    fs::path root;
    fs::path proc;
    std::shared_ptr<FakeGroupDirOps> ops;
    std::shared_ptr<CpuController> controller;
};

} // namespace partlink::capacity::testing
