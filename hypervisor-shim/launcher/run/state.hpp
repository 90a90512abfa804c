// The run's state document (RUN/state.json): what `up` started, so that
// `status`, `ssh` and `down` (and after a crash, the next `up`) find it.
// Parsing is strict: a document that does not match is reported as corrupt,
// never half-used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "error.hpp"
#include "run/options.hpp"

namespace partlink {

inline constexpr int kStateVersion = 1;

struct CgroupRecord {
    std::filesystem::path path;
    std::int64_t entitlement_units = 0; // capacity::CpuAmount units (1e-5 CPU)
    std::uint32_t weight = 100;         // cgroup v2 cpu.weight
    // The policy's bounds for directives, in the same units; 0 in documents
    // written before policies (read as unknown).
    std::int64_t min_units = 0;
    std::int64_t max_units = 0;
};

struct PartitionRecord {
    std::string name;
    int index = 0;
    // "starting" until it answered ssh, then "running"; "stopped" after
    // `partlink stop`, "failed" after a `partlink start` that did not get it up.
    std::string state = "starting";
    std::string ip;
    std::string mac; // the data NIC's MAC, the one that carries `ip`
    std::string mgmt_mac;
    std::string partlink_mac;
    std::optional<pid_t> qemu_pid; // empty until QEMU was spawned
    int ssh_port = 0;
    Accel accel = Accel::Tcg;
    NetMode net = NetMode::VirtioTap;
    std::filesystem::path console;
    std::filesystem::path log;
    std::filesystem::path qmp;
    std::filesystem::path pidfile;
    std::vector<std::string> taps;
    // Its CPU cgroup (<cpu root>/partlink/<run-id>/vmN) and what the policy
    // entitles it to; nothing with `up --no-cgroups`.
    std::optional<CgroupRecord> cgroup;
    // QEMU's gdbstub on 127.0.0.1 (`up --gdb`).
    std::optional<int> gdb_port;
};

// What the partitions boot: the kernel and initramfs (the image's, or
// prepared from `up --kernel`), the kernel's release and the tree partlink.ko
// is built against, and the developer loop's options.  Empty paths (in
// documents of releases before --kernel): the image's kernel.
struct BootRecord {
    BootOptions options;
    std::filesystem::path kernel;
    std::filesystem::path initrd;
    std::string release;
    std::filesystem::path kdir;
    std::filesystem::path vmlinux; // with debug info, for gdb; may be empty
};

// partlinkd of a --net partlink run: recorded before it is spawned, its pid
// right after.
struct DaemonRecord {
    std::optional<pid_t> pid;
    std::filesystem::path socket;
    std::filesystem::path segment;
    std::filesystem::path config;
    std::filesystem::path log;
};

struct RunSettings {
    int vms = 0;
    int mem_mib = 0;
    int cpus = 0;
    Accel accel_requested = Accel::Auto;
    Accel accel = Accel::Tcg;
    NetMode net = NetMode::VirtioTap;
    std::optional<int> ssh_port_base;
    int timeout_seconds = 0;
};

struct RunState {
    int version = kStateVersion;
    std::filesystem::path run_dir;
    std::string created; // UTC, ISO 8601
    pid_t launcher_pid = 0;
    RunSettings settings;
    std::optional<std::string> bridge; // recorded before it is created
    // --net partlink only.  A document without the field (from a release
    // before partlinkd) reads as none.
    std::optional<DaemonRecord> partlinkd;
    std::vector<PartitionRecord> partitions;
    // <cpu root>/partlink/<run-id>: recorded before it is created; nothing
    // with `up --no-cgroups` (and in documents of earlier releases).
    std::optional<std::filesystem::path> cgroup_run;
    BootRecord boot;

    const PartitionRecord* find(std::string_view name) const;
    PartitionRecord* find(std::string_view name);
    std::vector<std::string> names() const;
    // Every interface this run created or was about to create: taps, then bridge.
    std::vector<std::string> interfaces() const;
};

class StateCorrupt : public Error {
public:
    explicit StateCorrupt(const std::string& reason)
        : Error("state file is corrupt: " + reason)
        , reason_(reason) {}
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string reason_;
};

nlohmann::ordered_json state_to_json(const RunState& state);
RunState state_from_json(const nlohmann::json& doc); // throws StateCorrupt
std::string serialize_state(const RunState& state);
RunState parse_state(std::string_view text); // throws StateCorrupt

} // namespace partlink
