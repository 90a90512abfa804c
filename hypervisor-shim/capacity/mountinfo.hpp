// /proc/PID/mountinfo, as far as cgroup detection needs it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace partlink::capacity {

struct MountEntry {
    std::filesystem::path root;             // the mount's root within its filesystem
    std::filesystem::path mount_point;      // where it is mounted, in our namespace
    std::string fstype;                     // "cgroup", "cgroup2", ...
    std::vector<std::string> super_options; // "rw", "cpu", "cpuacct", "name=systemd"
};

// Lines that do not have the documented shape are skipped rather than
// rejected: one odd mount must not stop us finding the cgroup ones.
std::vector<MountEntry> parse_mountinfo(std::string_view text);

// The kernel escapes space, tab, newline and backslash in paths as \ooo.
std::string unescape_mount_path(std::string_view field);

} // namespace partlink::capacity
