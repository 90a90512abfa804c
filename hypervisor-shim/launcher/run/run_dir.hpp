// A run directory: the state document, the lock, and every per-partition
// file (console, log, QMP socket, pidfile) of one set of partitions.  Several
// run directories may be up at the same time; nothing in one refers to
// another.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "run/state.hpp"
#include "unique_fd.hpp"

namespace partlink {

// File names in a run directory that are also read without a RunDir.
inline constexpr const char* kWlmAuditLog = "wlm-audit.jsonl";
inline constexpr const char* kWlmChartLog = "wlm-chart.jsonl";

class RunDir {
public:
    // Creates the directory if needed; the path becomes absolute and
    // symlink-free, because it is baked into QEMU command lines and into the
    // interface-name hash, both of which must not depend on how it was spelled.
    static RunDir open(const std::filesystem::path& dir);
    // For a directory that may not exist (status/down of a run that never ran).
    static std::optional<RunDir> open_existing(const std::filesystem::path& dir);

    const std::filesystem::path& path() const { return path_; }

    std::filesystem::path state_file() const { return path_ / "state.json"; }
    std::filesystem::path lock_file() const { return path_ / "lock"; }
    std::filesystem::path console_file(int index) const;
    // The serial port's socket, for `partlink console`.
    std::filesystem::path console_socket(int index) const;
    std::filesystem::path log_file(int index) const;
    std::filesystem::path qmp_socket(int index) const;
    // partlinkd's own QMP monitor of partition N (its balloon).
    std::filesystem::path hv_qmp_socket(int index) const;
    std::filesystem::path pid_file(int index) const;
    std::filesystem::path ssh_probe_log(int index) const;
    std::filesystem::path data_socket() const { return path_ / "data.sock"; }
    std::filesystem::path probe_bios() const { return path_ / "probe.bin"; }
    std::filesystem::path probe_log() const { return path_ / "probe.log"; }
    std::filesystem::path probe_console() const { return path_ / "probe.console"; }
    // The kernel tree partlink.ko is built against (`make driver` reads it).
    std::filesystem::path kdir_file() const { return path_ / "kdir"; }
    // --net partlink: partlinkd's socket, its fabric segment, its
    // configuration (when `up` writes it) and its log.
    std::filesystem::path partlinkd_socket() const { return path_ / "partlinkd.sock"; }
    std::filesystem::path fabric_segment() const { return path_ / "fabric"; }
    std::filesystem::path fabric_config() const { return path_ / "fabric.json"; }
    std::filesystem::path partlinkd_log() const { return path_ / "partlinkd.log"; }
    // Shared segments: the table partlinkd serves (a copy of `up --segments
    // FILE`, replaced by `segments load`) and the state it writes.
    std::filesystem::path segments_table() const { return path_ / "segments.json"; }
    std::filesystem::path segments_state() const { return path_ / "segments-state.json"; }
    // Capacity management: the copy of `up --policy FILE`, what partlinkd
    // gets as --capacity, the audit and chart logs it appends to, and the
    // default picture of `partlink wlm chart`.
    std::filesystem::path policy_copy() const { return path_ / "policy.json"; }
    std::filesystem::path capacity_config() const { return path_ / "capacity.json"; }
    std::filesystem::path wlm_audit_log() const { return path_ / kWlmAuditLog; }
    std::filesystem::path wlm_chart_log() const { return path_ / kWlmChartLog; }
    std::filesystem::path wlm_chart_png() const { return path_ / "wlm-chart.png"; }

    // Nothing if there is no state file; throws StateCorrupt if it does not parse.
    std::optional<RunState> load_state() const;
    // Atomic: readers see the old or the new document, never a torn one.
    void save_state(const RunState& state) const;

    // Indices N of the vmN.pid files present (after a crash, the pidfiles may
    // be all that is left).
    std::vector<int> pid_file_indices() const;

private:
    explicit RunDir(std::filesystem::path path)
        : path_(std::move(path)) {}
    std::filesystem::path path_;
};

// flock(2) on RUN/lock.  Exclusive for commands that change the run (up,
// down), shared for those that only look (status).  Released when the
// object dies or the process does, however it dies.
class RunDirLock {
public:
    enum class Mode { Shared, Exclusive };

    // Nothing if another process holds a conflicting lock.
    static std::optional<RunDirLock> try_acquire(const RunDir& dir, Mode mode);
    // Throws an Error that says what to do if the lock is busy.
    static RunDirLock acquire_or_fail(const RunDir& dir, Mode mode);

private:
    explicit RunDirLock(UniqueFd fd)
        : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

// Reads a whole (small) file; nothing if it does not exist.
std::optional<std::string> read_text_file(const std::filesystem::path& path);
// The last `lines` lines of a file, for error reports.
std::string tail_lines(const std::filesystem::path& path, std::size_t lines);
// Writes `data` to path via a temporary file and rename(2).
void write_file_atomic(const std::filesystem::path& path, std::string_view data);

} // namespace partlink
