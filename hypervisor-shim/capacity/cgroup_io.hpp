// Reading and writing cgroup control files.
//
// cgroupfs reports most problems as an errno from write(2), and a bare
// "Invalid argument" on cpu.cfs_quota_us tells an operator nothing, so every
// failure here becomes an error that names the file, the value and, where
// there is one, the fix.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace partlink::capacity {

class CgroupError : public Error {
public:
    using Error::Error;
};

// Raised when we may not touch the cgroup tree at all.  partlinkd checks for
// this at start, so that capacity enforcement never silently does nothing.
class CgroupPermissionError : public CgroupError {
public:
    using CgroupError::CgroupError;
};

// Whether a write replaces the value (cpu.max, cpu.shares) or adds to a list
// (tasks, cgroup.procs: on a fake tree, appending keeps every id written).
enum class WriteMode { replace, append };

std::string read_control(const std::filesystem::path& file);
void write_control(const std::filesystem::path& file, std::string_view value,
                   WriteMode mode = WriteMode::replace);
// The same, returning 0 or the errno instead of throwing: for writes where
// some errors are expected (ESRCH: the thread being moved has exited).
int try_write_control(const std::filesystem::path& file, std::string_view value,
                      WriteMode mode = WriteMode::replace);

// The error for a failed `action` ("reading", "writing '50000 100000' to")
// on `file`: a permission error if `err` is one, else a CgroupError ending
// in `hint` when given.
[[noreturn]] void throw_cgroup_error(std::string_view action, const std::filesystem::path& file,
                                     int err, std::string_view hint = {});

// What an operator should do when `file` (a control file, or the directory
// a group is created in) is not writable.
std::string permission_advice(const std::filesystem::path& file, int err);

// Whitespace-separated words: cgroup.controllers, cgroup.procs, tasks.
std::vector<std::string> split_words(std::string_view text);

// "key value" lines (cpu.stat).  Lines that do not parse are skipped: newer
// kernels add keys, and a value we cannot read is not one we need.
std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text);

// A whole control file's value as an integer, naming the file if it is not.
std::int64_t parse_integer(std::string_view text, const std::filesystem::path& file);

} // namespace partlink::capacity
