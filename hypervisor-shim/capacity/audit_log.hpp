// The capacity audit log: one JSON object per line, one line per directive,
// appended and fsync'ed before partlinkd answers the guest, so that what was
// decided survives a crash.  The reader serves `partlink wlm log`.
//
// A line:
//   {"time":"2025-11-25T09:23:01.123456Z","from":"vm1",
//    "directive":{"target":"vm2","cpu":1.5},"result":"clamped","reason":"...",
//    "changes":[{"partition":"vm2","before":0.66666,"after":1.33333},...],
//    "verification":{"ok":true,"window_ms":300,"partitions":[...]}}
// cpu is a string ("nan", "inf") when the directive's value was not finite.
// A memory directive has "memory_mib" in place of "cpu", no changes and, once
// its balloon target was set, a "memory" object instead of "verification":
//   "directive":{"target":"vm2","memory_mib":384},...,
//   "memory":{"before_mib":512,"target_mib":384,"actual_mib":384,
//             "reached":true,"window_ms":700}
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "directive.hpp"
#include "json_lines.hpp"

namespace partlink::capacity {

// A directive's result as logged: the Verdict, or `failed` when an allowed
// change could not be applied (and was rolled back).
enum class AuditResult { applied, clamped, refused, failed };
std::string_view to_string(AuditResult result);
AuditResult audit_result(Verdict verdict);

// What the Enforcer saw for one partition after applying a cap.
struct PartitionCheck {
    std::string partition;
    std::optional<double> expected_cpus;  // nullopt: unlimited
    std::optional<double> read_back_cpus; // nullopt: unlimited or unreadable
    bool matches = false;
    std::string error; // why it could not be read back, if it could not
    // cpu.stat over the window.
    std::uint64_t periods = 0;
    std::uint64_t throttled_periods = 0;
    std::int64_t throttled_usec = 0;
    std::optional<std::int64_t> usage_usec;
    bool usage_approximate = false;
};

struct Verification {
    bool ok = false; // every touched cap reads back as set
    std::int64_t window_ms = 0;
    std::vector<PartitionCheck> partitions;
};

// What a memory directive did to the target's balloon.
struct BalloonCheck {
    std::optional<std::uint64_t> before_mib; // the guest's RAM before; unknown if unreadable
    std::uint64_t target_mib = 0;            // the balloon target set
    std::optional<std::uint64_t> actual_mib; // the guest's RAM at the end of the window
    bool reached = false;                    // actual == target within the window
    std::int64_t window_ms = 0;
    std::string error; // why the balloon could not be set or read
};

struct AuditRecord {
    std::chrono::system_clock::time_point time;
    std::string from;
    std::string target;
    double cpu = 0; // as asked, which may be NaN or infinite
    // A memory directive: the MiB asked (cpu is then NaN and unused).
    std::optional<std::int64_t> memory_mib;
    std::optional<std::string> donor;
    AuditResult result = AuditResult::refused;
    std::string reason;
    // Caps before and after the directive; for `failed`, what was planned,
    // not what holds (the writes were undone).
    std::vector<CapChange> changes;
    std::optional<Verification> verification; // only for applied and clamped
    std::optional<BalloonCheck> balloon;      // a memory directive, unless refused
};

// Ordered as in the example above, so that a line reads time first.
nlohmann::ordered_json to_json(const AuditRecord& record);
// Throws nlohmann::json::exception or Error on a line that is not a record.
AuditRecord audit_record_from_json(const nlohmann::json& json);

// "2025-11-25T09:23:01.123456Z" (UTC, microseconds).
std::string format_iso8601(std::chrono::system_clock::time_point time);
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);

class AuditLog {
public:
    // Opens (creating) `file` for appending only: earlier lines can be read
    // but never rewritten through this object.
    explicit AuditLog(std::filesystem::path file);

    // One write(2) of the whole line on an O_APPEND descriptor, then fsync.
    void append(const AuditRecord& record) { file_.append(to_json(record)); }
    const std::filesystem::path& path() const { return file_.path(); }

private:
    JsonLinesFile file_;
};

struct AuditLogContents {
    std::vector<AuditRecord> records;
    // "line 7: ..." for lines that are not records (a torn last line after a
    // crash, a hand edit); reading goes on past them.
    std::vector<std::string> problems;
};

AuditLogContents read_audit_log(const std::filesystem::path& file);

} // namespace partlink::capacity
