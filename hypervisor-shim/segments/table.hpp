// The operator's table of shared segments (segments.json, the patent's
// "Shared Memory Configuration Data Set"): which segments exist, how big they
// are, and which partitions may map each, with the owner, group and mode of
// the guest's device file (/dev/partlink/seg/<name>) and whether the mapping
// is read-only.
//
//   {"segments": [
//     {"name": "pipe0", "size": "16M", "pinned": false,
//      "partitions": {
//        "vm1": {"uid": 1000, "gid": 1000, "mode": "0660", "access": "rw"},
//        "vm2": {"uid": 0, "gid": 0, "mode": "0600", "access": "ro"}}}]}
//
// "segments" (required, [] for none): at most 64 (PARTLINK_SEG_IDS).
// Per segment:
//   "name"        required; 1..31 of [A-Za-z0-9._-], not starting with '.'
//                 or '-' (it becomes a file name in the guest); unique.
//   "size"        required; a JSON integer of bytes, or a string "<n>",
//                 "<n>K", "<n>M", "<n>G" (binary units, k/m/g too).  More
//                 than 0, a multiple of 4096, at most 1 GiB.
//   "pinned"      optional bool, default false: locked in host memory.
//   "partitions"  required, non-empty object: partition name -> access.
// Per partition ("vm1": {} takes every default):
//   "uid", "gid"  integers 0..4294967294, default 0.
//   "mode"        a string of 3 or 4 octal digits, at most "0777", default
//                 "0600".  A JSON number is refused: 660 in JSON is decimal.
//   "access"      "rw" (default) or "ro".
// A partition may be given at most 32 segments (PARTLINK_SEG_SLOTS) of at
// most 1 GiB in total (the device's BAR 2 window).  Unknown keys and wrong
// types are refused.
//
// Every error is a partlink::Error whose message starts with the origin (the
// file) and names the segment and the partition where there is one:
//   segments.json: segment "pipe0": size 1000 is not a multiple of the page size (4096)
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "partlink/partlink_abi.h"

namespace partlink::segments {

inline constexpr std::uint64_t kPageSize = 4096;
// The largest segment, and what one partition may map in all (BAR 2).
inline constexpr std::uint64_t kMaxSegmentSize = std::uint64_t{1} << 30;
inline constexpr std::uint64_t kWindowSize = std::uint64_t{1} << 30;
inline constexpr std::size_t kMaxSegments = PARTLINK_SEG_IDS;
inline constexpr std::size_t kMaxSegmentsPerPartition = PARTLINK_SEG_SLOTS;
inline constexpr std::size_t kMaxNameLength = PARTLINK_SEG_NAME_LEN - 1;
// The largest uid or gid: (uid_t)-1 means "no change" to chown.
inline constexpr std::uint32_t kMaxOwnerId = 4294967294u;

// One partition's rights on a segment.
struct Access {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    std::uint16_t mode = 0600; // permission bits, 0 .. 0777
    bool read_only = false;

    bool operator==(const Access&) const = default;
};

struct Segment {
    std::string name;
    std::uint64_t size = 0; // bytes, a multiple of kPageSize
    bool pinned = false;
    std::map<std::string, Access, std::less<>> partitions; // partition name -> access

    // The access of `partition`, nullptr if it may not map the segment.
    const Access* access_of(std::string_view partition) const;

    bool operator==(const Segment&) const = default;
};

// The partition names a table may use: std::nullopt accepts any valid
// partition name (1..15 of [A-Za-z0-9_-]).
using KnownPartitions = std::optional<std::set<std::string, std::less<>>>;

class Table {
public:
    // No segments.
    Table() = default;

    // Throws Error naming `file` if it cannot be read or is not a valid
    // table.
    static Table load(const std::filesystem::path& file, const KnownPartitions& known);
    // The same from text; `origin` starts every error message.
    static Table parse(std::string_view text, const std::string& origin,
                       const KnownPartitions& known);

    // In the order of the file.
    const std::vector<Segment>& segments() const { return segments_; }
    // nullptr if there is no segment of that name.
    const Segment* find(std::string_view name) const;
    // The sum of the segments' sizes.
    std::uint64_t total_size() const;
    // Where the table came from ("" for an empty Table()).
    const std::string& origin() const { return origin_; }

    // Equal segments in the same order (the origin is not compared).
    bool operator==(const Table& other) const { return segments_ == other.segments_; }

private:
    std::string origin_;
    std::vector<Segment> segments_;
};

// One difference between two tables, for the operator to read before a
// reload is applied.
struct Change {
    enum class Kind {
        Added,   // + pipe0 (16 MiB) for vm1 rw 1000:1000 0660, vm2 ro 0:0 0600
        Removed, // - old0
        Resized, // ~ pipe0: 16 MiB -> 32 MiB, a new segment (contents not kept) for vm1 rw ...
        Pinned,  // ~ pipe0: pinned false -> true
        Granted, // ~ pipe0: + vm3 rw 0:0 0600
        Revoked, // ~ pipe0: - vm3
        Access,  // ~ pipe0: vm2 ro -> rw, uid 0 -> 1000, gid 0 -> 1000, mode 0600 -> 0660
    };
    Kind kind;
    std::string segment;
    std::string partition; // Granted, Revoked, Access; "" otherwise
    std::string description;

    bool operator==(const Change&) const = default;
};

// What loading `next` over `old` changes: removed segments first (in old's
// order), then per segment of `next` in its order: added, or resized, or its
// pinned change followed by its partitions' changes in name order.  A
// resized segment is a new segment: its Resized change is the only one.
std::vector<Change> diff(const Table& old, const Table& next);

// The canonical form of a table: every key present, sizes in bytes, modes
// as "0660".  Table::parse accepts it and gives back an equal table.
nlohmann::json to_json(const Table& table);
nlohmann::json to_json(const Segment& segment);

// "16 MiB", "4 KiB", "1536 MiB", "1000 bytes": the largest binary unit
// that divides `bytes` exactly.
std::string format_size(std::uint64_t bytes);
// "0660"
std::string format_mode(std::uint16_t mode);
// "rw 1000:1000 0660"
std::string format_access(const Access& access);

} // namespace partlink::segments
