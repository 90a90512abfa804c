#include "store.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <utility>

#include "error.hpp"

namespace partlink::segments {

namespace {

constexpr unsigned kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

std::string where_of(const std::string& origin, const std::string& name) {
    return (origin.empty() ? std::string("segments") : origin) + ": segment \"" + name + "\"";
}

std::string memlock_limit() {
    struct rlimit limit {};
    if (::getrlimit(RLIMIT_MEMLOCK, &limit) < 0)
        return "unknown";
    if (limit.rlim_cur == RLIM_INFINITY)
        return "unlimited";
    return format_size(limit.rlim_cur);
}

// A sealed memfd of the segment's size.
UniqueFd create_memfd(const Segment& segment, const std::string& where) {
    std::string name = "partlink-seg:" + segment.name;
    UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd)
        throw_errno(where + ": memfd_create");
    if (::ftruncate(fd.get(), static_cast<off_t>(segment.size)) < 0)
        throw_errno(where + ": cannot size its memfd to " + format_size(segment.size));
    if (::fcntl(fd.get(), F_ADD_SEALS, kSeals) < 0)
        throw_errno(where + ": cannot seal its memfd");
    return fd;
}

// The same memfd, a new read-only file description.
UniqueFd reopen_read_only(int fd, const std::string& where) {
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!read_only)
        throw_errno(where + ": cannot open its memfd read-only (" + path + ")");
    return read_only;
}

// Maps the memfd here and locks its pages in RAM.
Mapping pin(int fd, const Segment& segment, const std::string& where) {
    auto mapping = Mapping::map(fd, segment.size, PROT_READ | PROT_WRITE, where);
    if (::mlock(mapping.data(), mapping.size()) < 0) {
        int err = errno;
        throw Error(where + ": cannot lock its " + format_size(segment.size) +
                    " in memory (\"pinned\": true): " + std::strerror(err) +
                    "; raise partlinkd's locked-memory limit (RLIMIT_MEMLOCK, now " +
                    memlock_limit() +
                    ": ulimit -l, or LimitMEMLOCK= in its systemd unit), run it as root "
                    "(CAP_IPC_LOCK), or set \"pinned\": false");
    }
    return mapping;
}

} // namespace

// --- Mapping ---

Mapping Mapping::map(int fd, std::size_t length, int prot, const std::string& what) {
    void* addr = ::mmap(nullptr, length, prot, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED)
        throw_errno(what + ": mmap of " + format_size(length));
    return Mapping(addr, length);
}

Mapping::Mapping(Mapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr))
    , length_(std::exchange(other.length_, 0)) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
    if (this != &other) {
        reset();
        addr_ = std::exchange(other.addr_, nullptr);
        length_ = std::exchange(other.length_, 0);
    }
    return *this;
}

Mapping::~Mapping() {
    reset();
}

void Mapping::reset() noexcept {
    if (addr_)
        ::munmap(addr_, length_);
    addr_ = nullptr;
    length_ = 0;
}

// --- Store ---

Applied Store::apply(const Table& next, std::uint64_t memory_limit) {
    std::string origin = next.origin().empty() ? std::string("segments") : next.origin();
    if (next.total_size() > memory_limit)
        throw Error(origin + ": the segments total " + format_size(next.total_size()) +
                    ", more than the " + format_size(memory_limit) +
                    " this host allows; shrink or remove segments");

    // Plan: which of next's segments keep their id (same name and size).
    std::vector<std::optional<std::uint32_t>> ids(next.segments().size());
    std::array<bool, kSegmentIds> kept{};
    for (std::size_t i = 0; i < next.segments().size(); ++i) {
        const auto& segment = next.segments()[i];
        auto id = id_of(segment.name);
        if (id && entries_[*id]->segment.size == segment.size) {
            ids[i] = *id;
            kept[*id] = true;
        }
    }
    std::array<bool, kSegmentIds> taken{}; // kept, or given to a new segment
    std::array<bool, kSegmentIds> released{};
    for (std::uint32_t id = 0; id < kSegmentIds; ++id) {
        taken[id] = kept[id];
        released[id] = entries_[id] && !kept[id];
    }
    auto allocate = [&]() -> std::uint32_t {
        for (bool allow_released : {false, true})
            for (std::uint32_t id = 0; id < kSegmentIds; ++id)
                if (!taken[id] && (allow_released || !released[id])) {
                    taken[id] = true;
                    return id;
                }
        throw Error(origin + ": more than " + std::to_string(kSegmentIds) + " segments");
    };
    for (auto& id : ids)
        if (!id)
            id = allocate();

    // Stage everything that can fail: new memfds, new locks, copies.
    struct Staged {
        std::uint32_t id;
        std::optional<Entry> created;      // a new memfd
        std::optional<Segment> kept;       // a kept memfd's new description
        std::optional<Mapping> pin_change; // a kept memfd newly pinned (or unpinned: empty)
    };
    std::vector<Staged> staged;
    staged.reserve(next.segments().size());
    for (std::size_t i = 0; i < next.segments().size(); ++i) {
        const auto& segment = next.segments()[i];
        std::uint32_t id = *ids[i];
        std::string where = where_of(origin, segment.name);
        Staged stage{id, std::nullopt, std::nullopt, std::nullopt};
        if (kept[id]) {
            const Entry& old = *entries_[id];
            stage.kept = segment;
            if (segment.pinned && !old.pin)
                stage.pin_change = pin(old.fd.get(), segment, where);
            else if (!segment.pinned && old.pin)
                stage.pin_change = Mapping();
        } else {
            Entry entry{segment, create_memfd(segment, where), UniqueFd(), Mapping()};
            entry.read_only_fd = reopen_read_only(entry.fd.get(), where);
            if (segment.pinned)
                entry.pin = pin(entry.fd.get(), segment, where);
            stage.created.emplace(std::move(entry));
        }
        staged.push_back(std::move(stage));
    }

    // What changes, per id and per partition.
    Applied applied;
    auto partition = [&](const std::string& name) -> PartitionUpdate& {
        return applied.partitions[name];
    };
    for (std::uint32_t id = 0; id < kSegmentIds; ++id) {
        if (!released[id])
            continue;
        applied.removed.push_back(id);
        for (const auto& [name, access] : entries_[id]->segment.partitions)
            partition(name).unmap.push_back(id);
    }
    for (const auto& stage : staged) {
        if (stage.created) {
            applied.added.push_back(stage.id);
            for (const auto& [name, access] : stage.created->segment.partitions)
                partition(name).map.push_back(stage.id);
            continue;
        }
        const Segment& before = entries_[stage.id]->segment;
        const Segment& after = *stage.kept;
        if (before == after)
            continue;
        applied.updated.push_back(stage.id);
        for (const auto& [name, access] : before.partitions)
            if (!after.access_of(name))
                partition(name).unmap.push_back(stage.id);
        for (const auto& [name, access] : after.partitions) {
            const Access* was = before.access_of(name);
            if (!was) {
                partition(name).map.push_back(stage.id);
            } else if (was->read_only != access.read_only) {
                partition(name).unmap.push_back(stage.id);
                partition(name).map.push_back(stage.id);
            } else if (*was != access || before.pinned != after.pinned) {
                partition(name).update.push_back(stage.id);
            }
        }
    }
    std::sort(applied.added.begin(), applied.added.end());
    std::sort(applied.updated.begin(), applied.updated.end());
    for (auto& [name, update] : applied.partitions)
        for (auto* list : {&update.unmap, &update.map, &update.update})
            std::sort(list->begin(), list->end());
    Table table = next;

    // Commit: only moves from here on.
    decltype(entries_) entries;
    for (auto& stage : staged) {
        if (stage.created) {
            entries[stage.id] = std::move(stage.created);
            continue;
        }
        entries[stage.id] = std::move(entries_[stage.id]);
        Entry& entry = *entries[stage.id];
        entry.segment = std::move(*stage.kept);
        if (stage.pin_change)
            entry.pin = std::move(*stage.pin_change);
    }
    entries_.swap(entries); // the removed and resized memfds close with `entries`
    table_ = std::move(table);
    return applied;
}

std::optional<std::uint32_t> Store::id_of(std::string_view name) const {
    for (std::uint32_t id = 0; id < kSegmentIds; ++id)
        if (entries_[id] && entries_[id]->segment.name == name)
            return id;
    return std::nullopt;
}

const Store::Entry* Store::find(std::uint32_t id) const {
    if (id >= kSegmentIds || !entries_[id])
        return nullptr;
    return &*entries_[id];
}

const Store::Entry& Store::entry(std::uint32_t id) const {
    const Entry* found = find(id);
    if (!found)
        throw Error("no shared segment has id " + std::to_string(id));
    return *found;
}

const Segment* Store::segment(std::uint32_t id) const {
    const Entry* found = find(id);
    return found ? &found->segment : nullptr;
}

int Store::fd(std::uint32_t id) const {
    return entry(id).fd.get();
}

int Store::read_only_fd(std::uint32_t id) const {
    return entry(id).read_only_fd.get();
}

int Store::fd_for(std::uint32_t id, std::string_view partition) const {
    const Entry& found = entry(id);
    const Access* access = found.segment.access_of(partition);
    if (!access)
        throw Error("partition " + std::string(partition) + " may not map shared segment \"" +
                    found.segment.name + "\"");
    return access->read_only ? found.read_only_fd.get() : found.fd.get();
}

bool Store::locked(std::uint32_t id) const {
    return static_cast<bool>(entry(id).pin);
}

std::vector<StoredSegment> Store::segments() const {
    std::vector<StoredSegment> list;
    for (std::uint32_t id = 0; id < kSegmentIds; ++id)
        if (const Entry* found = find(id))
            list.push_back({id, &found->segment, found->fd.get(), found->read_only_fd.get(),
                            static_cast<bool>(found->pin)});
    return list;
}

std::vector<std::uint32_t> Store::ids_of(std::string_view partition) const {
    std::vector<std::uint32_t> ids;
    for (std::uint32_t id = 0; id < kSegmentIds; ++id)
        if (const Entry* found = find(id); found && found->segment.access_of(partition))
            ids.push_back(id);
    return ids;
}

std::uint64_t Store::mask_of(std::string_view partition) const {
    std::uint64_t mask = 0;
    for (auto id : ids_of(partition))
        mask |= std::uint64_t{1} << id;
    return mask;
}

std::uint64_t Store::shared(std::string_view a, std::string_view b) const {
    return mask_of(a) & mask_of(b);
}

partlink_msg_segment Store::message(std::uint32_t id, std::string_view partition) const {
    const Entry& found = entry(id);
    const Access* access = found.segment.access_of(partition);
    if (!access)
        throw Error("partition " + std::string(partition) + " may not map shared segment \"" +
                    found.segment.name + "\"");
    partlink_msg_segment msg{};
    msg.id = id;
    msg.flags = (access->read_only ? PARTLINK_SEG_READ_ONLY : 0u) |
                (found.segment.pinned ? PARTLINK_SEG_PINNED : 0u);
    msg.size = found.segment.size;
    msg.uid = access->uid;
    msg.gid = access->gid;
    msg.mode = access->mode;
    static_assert(kMaxNameLength < sizeof(msg.name));
    std::memcpy(msg.name, found.segment.name.data(), found.segment.name.size());
    return msg;
}

std::uint64_t Store::locked_bytes() const {
    std::uint64_t total = 0;
    for (const auto& slot : entries_)
        if (slot && slot->pin)
            total += slot->pin.size();
    return total;
}

std::uint64_t mem_available(const std::filesystem::path& meminfo) {
    std::ifstream in(meminfo);
    if (!in)
        throw_errno("cannot read " + meminfo.string());
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string key, unit;
        std::uint64_t value = 0;
        if (!(fields >> key >> value))
            continue;
        if (key != "MemAvailable:")
            continue;
        fields >> unit;
        if (unit != "kB")
            break;
        return value * 1024;
    }
    throw Error(meminfo.string() + ": no \"MemAvailable: <n> kB\" line");
}

} // namespace partlink::segments
