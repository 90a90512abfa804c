// The memfds behind the segments: seals, read-only fds, ids across reloads,
// kept contents, pinning, the memory limit, and what each apply() reports.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error.hpp"
#include "store.hpp"

using namespace partlink;
using namespace partlink::segments;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace {

constexpr std::uint64_t kNoLimit = std::uint64_t{1} << 40;

Table table(std::string_view segments) {
    return Table::parse(R"({"segments": [)" + std::string(segments) + "]}", "segments.json",
                        std::nullopt);
}

// A segment `name` of `size` (JSON) for vm1 rw and vm2 ro.
std::string seg(const std::string& name, const std::string& size = "4096", bool pinned = false) {
    return R"({"name": ")" + name + R"(", "size": )" + size + R"(, "pinned": )" +
           (pinned ? "true" : "false") +
           R"(, "partitions": {"vm1": {"uid": 1000, "mode": "0660"}, "vm2": {"access": "ro"}}})";
}

std::string join(std::initializer_list<std::string> parts) {
    std::string out;
    for (const auto& part : parts)
        out += (out.empty() ? "" : ", ") + part;
    return out;
}

// A mapping of `fd`, for the test to read or write the segment.
Mapping map_rw(int fd, std::size_t size) {
    return Mapping::map(fd, size, PROT_READ | PROT_WRITE, "test");
}

char* bytes(const Mapping& mapping) {
    return static_cast<char*>(mapping.data());
}

// The targets of this process's fds, e.g. "/memfd:partlink-seg:pipe0 (deleted)".
std::vector<std::string> open_files() {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        std::error_code ec;
        auto target = std::filesystem::read_symlink(entry.path(), ec);
        if (!ec)
            files.push_back(target.string());
    }
    return files;
}

std::size_t fds_of(const std::string& segment) {
    auto files = open_files();
    auto name = "/memfd:partlink-seg:" + segment + " (deleted)";
    return static_cast<std::size_t>(std::count(files.begin(), files.end(), name));
}

// AddressSanitizer turns mlock() into a no-op: the pinning tests cannot
// see a lock there.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMlockWorks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kMlockWorks = false;
#else
constexpr bool kMlockWorks = true;
#endif
#else
constexpr bool kMlockWorks = true;
#endif

#define SKIP_WITHOUT_MLOCK()                                                                       \
    do {                                                                                           \
        if (!kMlockWorks)                                                                          \
            GTEST_SKIP() << "AddressSanitizer ignores mlock()";                                    \
    } while (0)

// VmLck from /proc/self/status, in bytes.
std::uint64_t locked_here() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmLck:", 0) == 0)
            return std::stoull(line.substr(6)) * 1024;
    return 0;
}

TEST(Store, EmptyAtFirst) {
    Store store;
    EXPECT_TRUE(store.segments().empty());
    EXPECT_EQ(store.table(), Table());
    EXPECT_EQ(store.id_of("pipe0"), std::nullopt);
    EXPECT_EQ(store.segment(0), nullptr);
    EXPECT_EQ(store.segment(64), nullptr);
    EXPECT_THROW(store.fd(0), Error);
    EXPECT_THROW(store.read_only_fd(64), Error);
    EXPECT_EQ(store.locked_bytes(), 0u);
}

TEST(Store, SealedMemfdPerSegment) {
    Store store;
    auto applied = store.apply(table(join({seg("pipe0", R"("16M")"), seg("tiny")})), kNoLimit);
    EXPECT_THAT(applied.added, ElementsAre(0u, 1u));
    EXPECT_THAT(applied.updated, IsEmpty());
    EXPECT_THAT(applied.removed, IsEmpty());
    EXPECT_EQ(store.id_of("pipe0"), 0u);
    EXPECT_EQ(store.id_of("tiny"), 1u);

    int fd = store.fd(0);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 16 << 20);
    EXPECT_EQ(::fcntl(fd, F_GET_SEALS), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    EXPECT_EQ(::fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDWR);
    // No holder can resize it or seal it further.
    EXPECT_EQ(::ftruncate(fd, 4096), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::ftruncate(fd, 32 << 20), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::fallocate(fd, 0, 16 << 20, 4096), -1);
    EXPECT_EQ(errno, EPERM);
    EXPECT_EQ(::fcntl(store.read_only_fd(0), F_GET_SEALS),
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    // Named after the segment, where ls -l /proc/PID/fd shows it.
    EXPECT_EQ(fds_of("pipe0"), 2u);
    EXPECT_EQ(fds_of("tiny"), 2u);
}

TEST(Store, ReadOnlyFdCannotBeMappedWritable) {
    Store store;
    store.apply(table(seg("pipe0")), kNoLimit);
    int ro = store.read_only_fd(0);
    EXPECT_EQ(::fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
    EXPECT_EQ(::fcntl(ro, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    errno = 0;
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0), MAP_FAILED);
    EXPECT_EQ(errno, EACCES);
    EXPECT_EQ(::write(ro, "x", 1), -1);
    EXPECT_EQ(errno, EBADF);

    // It is the same memory: what the writer writes, the reader sees.
    auto writer = map_rw(store.fd(0), 4096);
    auto reader = Mapping::map(ro, 4096, PROT_READ, "test");
    std::strcpy(bytes(writer), "hello");
    EXPECT_STREQ(bytes(reader), "hello");

    // Each partition gets the fd its access says.
    EXPECT_EQ(store.fd_for(0, "vm1"), store.fd(0));
    EXPECT_EQ(store.fd_for(0, "vm2"), ro);
    try {
        store.fd_for(0, "vm3");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "partition vm3 may not map shared segment \"pipe0\"");
    }
}

TEST(Store, Message) {
    Store store;
    store.apply(table(join({seg("a"), seg("pipe0", R"("8K")", true)})), kNoLimit);
    auto rw = store.message(1, "vm1");
    EXPECT_EQ(rw.id, 1u);
    EXPECT_EQ(rw.flags, static_cast<std::uint32_t>(PARTLINK_SEG_PINNED));
    EXPECT_EQ(rw.size, 8192u);
    EXPECT_EQ(rw.uid, 1000u);
    EXPECT_EQ(rw.gid, 0u);
    EXPECT_EQ(rw.mode, 0660u);
    EXPECT_EQ(rw.pad, 0u);
    EXPECT_STREQ(rw.name, "pipe0");
    auto ro = store.message(1, "vm2");
    EXPECT_EQ(ro.flags, static_cast<std::uint32_t>(PARTLINK_SEG_PINNED | PARTLINK_SEG_READ_ONLY));
    EXPECT_EQ(ro.mode, 0600u);
    EXPECT_EQ(store.message(0, "vm2").flags, static_cast<std::uint32_t>(PARTLINK_SEG_READ_ONLY));
    EXPECT_THROW(store.message(0, "vm3"), Error);
    EXPECT_THROW(store.message(2, "vm1"), Error);

    // A 31-character name fills the field but for its NUL.
    std::string longest(31, 'n');
    store.apply(table(seg(longest)), kNoLimit);
    auto msg = store.message(*store.id_of(longest), "vm1");
    EXPECT_EQ(std::string(msg.name, sizeof(msg.name)), longest + '\0');
}

TEST(Store, ContentsSurviveAnApplyThatKeepsTheSegment) {
    Store store;
    store.apply(table(join({seg("pipe0"), seg("other")})), kNoLimit);
    int fd = store.fd(0);
    std::strcpy(bytes(map_rw(fd, 4096)), "kept");

    // Access, pinning and order change; name and size do not.
    auto applied = store.apply(table(R"({"name": "new", "size": 4096, "partitions": {"vm3": {}}},
                 {"name": "pipe0", "size": 4096, "pinned": true,
                  "partitions": {"vm1": {"access": "ro"}, "vm3": {"mode": "0644"}}})"),
                               kNoLimit);
    EXPECT_EQ(store.id_of("pipe0"), 0u);
    EXPECT_EQ(store.fd(0), fd);
    EXPECT_STREQ(bytes(map_rw(store.fd(0), 4096)), "kept");
    EXPECT_TRUE(store.locked(0));
    EXPECT_THAT(applied.updated, ElementsAre(0u));
    EXPECT_THAT(applied.removed, ElementsAre(1u));
    // "other" was just released: "new" does not take its id.
    EXPECT_THAT(applied.added, ElementsAre(2u));
    EXPECT_EQ(store.id_of("new"), 2u);
}

TEST(Store, IdsAreStableAndReused) {
    Store store;
    store.apply(table(join({seg("a"), seg("b"), seg("c")})), kNoLimit);
    EXPECT_EQ(store.id_of("a"), 0u);
    EXPECT_EQ(store.id_of("b"), 1u);
    EXPECT_EQ(store.id_of("c"), 2u);

    // Order in the file does not matter.
    auto applied = store.apply(table(join({seg("c"), seg("a"), seg("b")})), kNoLimit);
    EXPECT_TRUE(applied.empty());
    EXPECT_THAT(applied.partitions, IsEmpty());
    EXPECT_EQ(store.id_of("a"), 0u);
    EXPECT_EQ(store.id_of("c"), 2u);

    // b goes: its id is free, but not for a segment of the same apply.
    applied = store.apply(table(join({seg("a"), seg("c"), seg("d")})), kNoLimit);
    EXPECT_THAT(applied.removed, ElementsAre(1u));
    EXPECT_THAT(applied.added, ElementsAre(3u));
    EXPECT_EQ(store.id_of("b"), std::nullopt);
    EXPECT_EQ(store.id_of("d"), 3u);

    // Next time, the lowest free id.
    applied =
        store.apply(table(join({seg("a"), seg("c"), seg("d"), seg("e"), seg("f")})), kNoLimit);
    EXPECT_THAT(applied.added, ElementsAre(1u, 4u));
    EXPECT_EQ(store.id_of("e"), 1u);
    EXPECT_EQ(store.id_of("f"), 4u);

    // A resized segment is a new memfd with a new id; its contents are not kept.
    std::strcpy(bytes(map_rw(store.fd(0), 4096)), "old");
    applied = store.apply(
        table(join({seg("a", R"("8K")"), seg("c"), seg("d"), seg("e"), seg("f")})), kNoLimit);
    EXPECT_THAT(applied.removed, ElementsAre(0u));
    EXPECT_THAT(applied.added, ElementsAre(5u));
    EXPECT_EQ(store.id_of("a"), 5u);
    EXPECT_EQ(store.segment(5)->size, 8192u);
    EXPECT_EQ(bytes(map_rw(store.fd(5), 8192))[0], '\0');

    std::vector<std::uint32_t> ids;
    for (const auto& stored : store.segments()) {
        ids.push_back(stored.id);
        EXPECT_EQ(stored.fd, store.fd(stored.id));
        EXPECT_EQ(stored.read_only_fd, store.read_only_fd(stored.id));
        EXPECT_EQ(stored.segment, store.segment(stored.id));
        EXPECT_FALSE(stored.locked);
    }
    EXPECT_THAT(ids, ElementsAre(1u, 2u, 3u, 4u, 5u));
}

TEST(Store, AllIdsInUseReusesAReleasedOne) {
    std::string all, next;
    for (int i = 0; i < 64; ++i) {
        all += std::string(i ? ", " : "") + R"({"name": "s)" + std::to_string(i) +
               R"(", "size": 4096, "partitions": {"p)" + std::to_string(i % 2) + R"(": {}}})";
    }
    next = all;
    next.replace(next.find(R"("s7")"), 4, R"("x7")");
    Store store;
    store.apply(table(all), kNoLimit);
    EXPECT_EQ(store.id_of("s63"), 63u);
    auto applied = store.apply(table(next), kNoLimit);
    EXPECT_THAT(applied.removed, ElementsAre(7u));
    EXPECT_THAT(applied.added, ElementsAre(7u));
    EXPECT_EQ(store.id_of("x7"), 7u);
    // The device is told GONE first, then the new segment.
    EXPECT_THAT(applied.partitions.at("p1").unmap, ElementsAre(7u));
    EXPECT_THAT(applied.partitions.at("p1").map, ElementsAre(7u));
}

TEST(Store, RemovedSegmentsFdIsClosed) {
    Store store;
    store.apply(table(join({seg("gone"), seg("stays")})), kNoLimit);
    auto mapping = map_rw(store.fd(0), 4096);
    std::strcpy(bytes(mapping), "still here");
    EXPECT_EQ(fds_of("gone"), 2u);

    auto applied = store.apply(table(seg("stays")), kNoLimit);
    EXPECT_THAT(applied.removed, ElementsAre(0u));
    EXPECT_EQ(fds_of("gone"), 0u); // both the rw and the ro fd
    EXPECT_EQ(fds_of("stays"), 2u);
    EXPECT_EQ(store.segment(0), nullptr);
    EXPECT_THROW(store.fd(0), Error);
    // Who still maps it keeps the memory until it unmaps.
    EXPECT_STREQ(bytes(mapping), "still here");

    store.apply(Table(), kNoLimit);
    EXPECT_EQ(fds_of("stays"), 0u);
    EXPECT_TRUE(store.segments().empty());
}

TEST(Store, PinnedSegmentsAreLocked) {
    SKIP_WITHOUT_MLOCK();
    Store store;
    std::uint64_t before = locked_here();
    store.apply(table(join({seg("pinned", R"("2M")", true), seg("loose", R"("2M")")})), kNoLimit);
    EXPECT_TRUE(store.locked(0));
    EXPECT_FALSE(store.locked(1));
    EXPECT_EQ(store.locked_bytes(), 2u << 20);
    EXPECT_EQ(locked_here(), before + (2u << 20));
    EXPECT_TRUE(store.segments()[0].locked);

    // Every page of it is in memory: mincore through a mapping of our own.
    auto view = Mapping::map(store.read_only_fd(0), 2u << 20, PROT_READ, "test");
    std::vector<unsigned char> resident((2u << 20) / 4096);
    ASSERT_EQ(::mincore(view.data(), view.size(), resident.data()), 0);
    for (auto page : resident)
        ASSERT_TRUE(page & 1);

    // Unpinned by a reload: unlocked, contents kept.
    std::strcpy(bytes(map_rw(store.fd(0), 4096)), "pinned once");
    auto applied =
        store.apply(table(join({seg("pinned", R"("2M")"), seg("loose", R"("2M")")})), kNoLimit);
    EXPECT_THAT(applied.updated, ElementsAre(0u));
    EXPECT_FALSE(store.locked(0));
    EXPECT_EQ(store.locked_bytes(), 0u);
    EXPECT_EQ(locked_here(), before);
    EXPECT_STREQ(bytes(map_rw(store.fd(0), 4096)), "pinned once");

    // Pinned by a reload.
    store.apply(table(join({seg("pinned", R"("2M")"), seg("loose", R"("2M")", true)})), kNoLimit);
    EXPECT_TRUE(store.locked(1));
    EXPECT_EQ(locked_here(), before + (2u << 20));
    store.apply(Table(), kNoLimit);
    EXPECT_EQ(locked_here(), before);
}

// Drops CAP_IPC_LOCK (when root) and limits locked memory to 64 KiB in this
// process: mlock of more fails.
bool limit_locking() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) < 0)
        return false;
    data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    data[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    if (::syscall(SYS_capset, &header, data) < 0)
        return false;
    struct rlimit limit {
        64 << 10, 64 << 10
    };
    return ::setrlimit(RLIMIT_MEMLOCK, &limit) == 0;
}

// Runs `body` in a child process and returns what it returns ("" is success).
template <typename Body>
std::string in_child(Body body) {
    int pipe_fds[2];
    if (::pipe(pipe_fds) < 0)
        return "pipe failed";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipe_fds[0]);
        std::string result;
        try {
            result = body();
        } catch (const std::exception& e) {
            result = std::string("exception: ") + e.what();
        }
        if (::write(pipe_fds[1], result.data(), result.size()) < 0)
            ::_exit(2);
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string out;
    char buffer[1024];
    ssize_t n;
    while ((n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0)
        out.append(buffer, static_cast<std::size_t>(n));
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return "child failed";
    return out;
}

TEST(Store, PinningBeyondTheLockLimitIsAClearErrorAndChangesNothing) {
    SKIP_WITHOUT_MLOCK();
    Store store;
    auto before = table(join({seg("pipe0"), seg("other")}));
    store.apply(before, kNoLimit);
    std::strcpy(bytes(map_rw(store.fd(0), 4096)), "unchanged");

    auto result = in_child([&]() -> std::string {
        if (!limit_locking())
            return "cannot limit locking";
        try {
            store.apply(table(join({seg("new"), seg("pipe0"), seg("big", R"("1M")", true)})),
                        kNoLimit);
            return "no error";
        } catch (const Error& e) {
            std::string expected =
                "segments.json: segment \"big\": cannot lock its 1 MiB in memory (\"pinned\": "
                "true): Cannot allocate memory; raise partlinkd's locked-memory limit "
                "(RLIMIT_MEMLOCK, now 64 KiB: ulimit -l, or LimitMEMLOCK= in its systemd unit), "
                "run it as root (CAP_IPC_LOCK), or set \"pinned\": false";
            if (e.what() != expected)
                return std::string("message: ") + e.what();
        }
        if (!(store.table() == before) || store.id_of("big") || store.id_of("new") ||
            !store.id_of("other") || fds_of("big") != 0 || fds_of("new") != 0 ||
            std::strcmp(bytes(map_rw(store.fd(0), 4096)), "unchanged") != 0)
            return "store changed";
        return "";
    });
    EXPECT_EQ(result, "");
}

TEST(Store, KeptSegmentNewlyPinnedBeyondTheLimitChangesNothing) {
    SKIP_WITHOUT_MLOCK();
    Store store;
    auto before = table(join({seg("pipe0", R"("1M")"), seg("other")}));
    store.apply(before, kNoLimit);
    std::strcpy(bytes(map_rw(store.fd(0), 4096)), "unchanged");
    auto result = in_child([&]() -> std::string {
        if (!limit_locking())
            return "cannot limit locking";
        try {
            store.apply(table(join({seg("pipe0", R"("1M")", true), seg("new")})), kNoLimit);
            return "no error";
        } catch (const Error& e) {
            if (std::string(e.what()).find("segment \"pipe0\": cannot lock its 1 MiB") ==
                std::string::npos)
                return std::string("message: ") + e.what();
        }
        if (!(store.table() == before) || store.id_of("new") || store.locked(0) ||
            std::strcmp(bytes(map_rw(store.fd(0), 4096)), "unchanged") || fds_of("new") != 0)
            return "store changed";
        return "";
    });
    EXPECT_EQ(result, "");
}

TEST(Store, OverTheMemoryLimitIsRefusedAndChangesNothing) {
    Store store;
    auto before = table(join({seg("pipe0", R"("1M")"), seg("other")}));
    store.apply(before, 2u << 20);
    std::strcpy(bytes(map_rw(store.fd(0), 4096)), "unchanged");
    try {
        store.apply(table(join({seg("pipe0", R"("1M")"), seg("other"), seg("big", R"("1M")")})),
                    2u << 20);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "segments.json: the segments total 2052 KiB, more than the 2 MiB "
                               "this host allows; shrink or remove segments");
    }
    EXPECT_EQ(store.table(), before);
    EXPECT_EQ(store.id_of("other"), 1u);
    EXPECT_EQ(store.id_of("big"), std::nullopt);
    EXPECT_EQ(fds_of("big"), 0u);
    EXPECT_EQ(fds_of("other"), 2u);
    EXPECT_STREQ(bytes(map_rw(store.fd(0), 4096)), "unchanged");
    // Exactly the limit is fine.
    store.apply(table(join({seg("pipe0", R"("1M")"), seg("big", R"("1M")")})), 2u << 20);
    EXPECT_EQ(store.id_of("big"), 2u);
}

TEST(Store, WhatEachPartitionIsTold) {
    Store store;
    auto applied = store.apply(table(R"(
        {"name": "a", "size": 4096, "partitions": {"vm1": {}, "vm2": {"access": "ro"}}},
        {"name": "b", "size": 4096, "partitions": {"vm1": {}, "vm2": {}, "vm3": {}}},
        {"name": "c", "size": 4096, "partitions": {"vm1": {}}},
        {"name": "d", "size": 4096, "partitions": {"vm2": {}}})"),
                               kNoLimit);
    EXPECT_THAT(applied.partitions.at("vm1").map, ElementsAre(0u, 1u, 2u));
    EXPECT_THAT(applied.partitions.at("vm2").map, ElementsAre(0u, 1u, 3u));
    EXPECT_THAT(applied.partitions.at("vm3").map, ElementsAre(1u));
    EXPECT_THAT(applied.partitions.at("vm1").unmap, IsEmpty());
    EXPECT_EQ(store.mask_of("vm1"), 0b0111u);
    EXPECT_EQ(store.mask_of("vm2"), 0b1011u);
    EXPECT_EQ(store.mask_of("vm4"), 0u);
    EXPECT_EQ(store.shared("vm1", "vm2"), 0b0011u);
    EXPECT_EQ(store.shared("vm2", "vm3"), 0b0010u);
    EXPECT_THAT(store.ids_of("vm2"), ElementsAre(0u, 1u, 3u));

    // a: vm2 ro -> rw (a new fd), vm1 uid; b: pinned, vm3 revoked, vm4
    // granted; c: resized; d: removed; e: new.
    applied = store.apply(table(R"(
        {"name": "a", "size": 4096, "partitions": {"vm1": {"uid": 5}, "vm2": {}}},
        {"name": "b", "size": 4096, "pinned": true,
         "partitions": {"vm1": {}, "vm2": {}, "vm4": {}}},
        {"name": "c", "size": 8192, "partitions": {"vm1": {}}},
        {"name": "e", "size": 4096, "partitions": {"vm3": {}}})"),
                          kNoLimit);
    EXPECT_THAT(applied.removed, ElementsAre(2u, 3u));
    EXPECT_THAT(applied.added, ElementsAre(4u, 5u));
    EXPECT_EQ(store.id_of("c"), 4u);
    EXPECT_EQ(store.id_of("e"), 5u);
    EXPECT_THAT(applied.updated, ElementsAre(0u, 1u));
    EXPECT_EQ(applied.partitions.at("vm1"), (PartitionUpdate{{2}, {4}, {0, 1}}));
    EXPECT_EQ(applied.partitions.at("vm2"), (PartitionUpdate{{0, 3}, {0}, {1}}));
    EXPECT_EQ(applied.partitions.at("vm3"), (PartitionUpdate{{1}, {5}, {}}));
    EXPECT_EQ(applied.partitions.at("vm4"), (PartitionUpdate{{}, {1}, {}}));
    EXPECT_EQ(applied.partitions.size(), 4u);
    EXPECT_EQ(store.fd_for(0, "vm2"), store.fd(0));
}

TEST(Store, MemAvailable) {
    EXPECT_GT(mem_available(), 0u);
    char pattern[] = "/tmp/plseg.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    std::filesystem::path dir = pattern;
    auto file = dir / "meminfo";
    std::ofstream(file) << "MemTotal:       24683748 kB\nMemAvailable:   1024 kB\n";
    EXPECT_EQ(mem_available(file), 1024u * 1024);
    std::ofstream(file) << "MemTotal:       24683748 kB\n";
    try {
        mem_available(file);
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), file.string() + ": no \"MemAvailable: <n> kB\" line");
    }
    std::filesystem::remove_all(dir);
}

} // namespace
