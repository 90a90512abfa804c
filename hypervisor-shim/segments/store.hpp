// The memory behind the shared segments, which partlinkd owns: one sealed
// memfd per segment of the loaded Table, handed to the partitions' devices
// in SEGMENT messages (ABI: PARTLINK_MSG_SEGMENT).
//
// * Each segment is a memfd (MFD_CLOEXEC | MFD_ALLOW_SEALING) of its size,
//   sealed F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL: no holder can change
//   its size, so a device's mapping can never be cut short under it.  A
//   second, read-only file description of the same memfd (reopened through
//   /proc/self/fd) goes to read-only partitions: mmap(PROT_WRITE,
//   MAP_SHARED) on it fails with EACCES.  (This keeps the guest from
//   writing; a QEMU could still reopen the memfd read-write through its own
//   /proc/self/fd, so it is not a boundary against a compromised QEMU.)
// * A pinned segment is also mapped here, MAP_SHARED, and mlock()ed: its
//   pages are allocated and stay in RAM while the segment exists.
// * Ids 0..63 (PARTLINK_SEG_IDS) name segments on the fabric (seg_rung
//   bits, SEG_PEER masks, SEGMENT messages).  An id names one memfd for its
//   whole life: a segment keeps its id across apply() while its name and
//   size are unchanged; any other segment of the new table (new, or
//   resized: a new memfd, contents not kept) takes the lowest free id that
//   this apply() did not just release, and only when there is none, the
//   lowest released one.  So a resized segment gets a new id whenever one
//   is free, and a device never sees an id change size under it.  The
//   daemon sends every SEGMENT_GONE of an apply before its SEGMENTs.
// * A removed segment's memfd closes here at once; its memory is freed when
//   no QEMU maps it any more.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "partlink/partlink_abi.h"
#include "table.hpp"
#include "unique_fd.hpp"

namespace partlink::segments {

inline constexpr std::uint32_t kSegmentIds = PARTLINK_SEG_IDS;

// A MAP_SHARED mapping, unmapped on destruction.  Move-only.
class Mapping {
public:
    Mapping() noexcept = default;
    // Maps `length` bytes of `fd` from offset 0 with `prot`; throws Error
    // naming `what`.
    static Mapping map(int fd, std::size_t length, int prot, const std::string& what);

    Mapping(Mapping&& other) noexcept;
    Mapping& operator=(Mapping&& other) noexcept;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping();

    void* data() const noexcept { return addr_; }
    std::size_t size() const noexcept { return length_; }
    explicit operator bool() const noexcept { return addr_ != nullptr; }

private:
    Mapping(void* addr, std::size_t length) noexcept
        : addr_(addr)
        , length_(length) {}
    void reset() noexcept;

    void* addr_ = nullptr;
    std::size_t length_ = 0;
};

// One segment of the store, as segments() lists it.
struct StoredSegment {
    std::uint32_t id;
    const Segment* segment; // valid until the next apply()
    int fd;                 // the sealed memfd, O_RDWR
    int read_only_fd;       // the same memfd, O_RDONLY
    bool locked;            // pinned: mapped here and mlock()ed
};

// What one partition's device must be told after an apply(), in this order:
// SEGMENT_GONE for each of `unmap`, then SEGMENT for each of `map` (with
// fd_for(id, partition)) and of `update` (same id, same size and access
// mode: a new uid, gid, mode or pinned flag).  A partition whose access
// changed between rw and ro has the id in both `unmap` and `map`: its fd
// changes.  Ids in increasing order.
struct PartitionUpdate {
    std::vector<std::uint32_t> unmap;
    std::vector<std::uint32_t> map;
    std::vector<std::uint32_t> update;

    bool operator==(const PartitionUpdate&) const = default;
};

struct Applied {
    std::vector<std::uint32_t> added;   // new memfds (new or resized segments)
    std::vector<std::uint32_t> updated; // kept memfds whose pinned flag or access changed
    std::vector<std::uint32_t> removed; // memfds dropped (removed or resized segments)
    // Only the partitions with something to do, old or new.
    std::map<std::string, PartitionUpdate, std::less<>> partitions;

    bool empty() const { return added.empty() && updated.empty() && removed.empty(); }
};

class Store {
public:
    // No segments.
    Store() = default;
    Store(Store&&) noexcept = default;
    Store& operator=(Store&&) noexcept = default;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;
    ~Store() = default;

    // Makes `next` the loaded table: creates (and seals, and for pinned
    // segments locks) the memfds of new and resized segments, drops those of
    // removed and resized ones, keeps the others (their contents too).
    // Refuses a table whose sizes add up to more than `memory_limit` bytes.
    // On any error (Error: the limit, memfd_create, mlock...) nothing has
    // changed.
    Applied apply(const Table& next, std::uint64_t memory_limit);

    const Table& table() const { return table_; }

    // The id of a segment, nullopt if there is none of that name.
    std::optional<std::uint32_t> id_of(std::string_view name) const;
    // nullptr if the id is free (or out of range).
    const Segment* segment(std::uint32_t id) const;
    // The memfd: read-write, or read-only.  Throw Error for a free id.
    int fd(std::uint32_t id) const;
    int read_only_fd(std::uint32_t id) const;
    // What a partition's device gets: read_only_fd() for "ro", fd() for
    // "rw".  Throws Error if the partition may not map the segment.
    int fd_for(std::uint32_t id, std::string_view partition) const;
    // Whether the segment is mapped and locked here (pinned).
    bool locked(std::uint32_t id) const;

    // Every segment, in id order.
    std::vector<StoredSegment> segments() const;
    // The ids a partition may map, in increasing order.
    std::vector<std::uint32_t> ids_of(std::string_view partition) const;
    // The same as a bit per id.
    std::uint64_t mask_of(std::string_view partition) const;
    // The segments two partitions both map (SEG_PEER's `shared`).
    std::uint64_t shared(std::string_view a, std::string_view b) const;
    // The SEGMENT message for a partition (flags READ_ONLY and PINNED, its
    // uid, gid and mode).  Throws Error like fd_for().
    partlink_msg_segment message(std::uint32_t id, std::string_view partition) const;
    // The bytes of the pinned segments, locked here.
    std::uint64_t locked_bytes() const;

private:
    struct Entry {
        Segment segment;
        UniqueFd fd;
        UniqueFd read_only_fd;
        Mapping pin; // mapped and locked while pinned
    };

    const Entry& entry(std::uint32_t id) const;
    const Entry* find(std::uint32_t id) const;

    Table table_;
    std::array<std::optional<Entry>, kSegmentIds> entries_;
};

// MemAvailable from /proc/meminfo, in bytes (a base for apply()'s limit,
// e.g. half of it).  Throws Error if it cannot be read.
std::uint64_t mem_available(const std::filesystem::path& meminfo = "/proc/meminfo");

} // namespace partlink::segments
