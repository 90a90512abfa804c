#include "segment.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.hpp"

namespace fs = std::filesystem;

namespace partlink::fabric {

namespace {

constexpr std::size_t kSize = sizeof(partlink_fabric);

void default_lock_log(std::string_view message) {
    std::string line = "partlinkd: " + std::string(message) + "\n";
    // One write, so that lines from several processes do not interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

std::atomic<LockLog> g_lock_log{default_lock_log};

std::string remove_advice(const fs::path& path) {
    return "if no partlink VMs are running, remove " + path.string() +
           " and start partlinkd again (it creates a new one)";
}

partlink_fabric* map_segment(int fd, bool writable, const fs::path& path) {
    void* p =
        ::mmap(nullptr, kSize, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        throw_errno("cannot map fabric segment " + path.string());
    return static_cast<partlink_fabric*>(p);
}

// Checks an existing file; the Error names the file and what to do.
void check_existing(int fd, const fs::path& path, bool for_daemon) {
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        throw_errno("cannot stat fabric segment " + path.string());
    std::string advice = for_daemon ? ": " + remove_advice(path) : "";
    if (!S_ISREG(st.st_mode))
        throw Error(path.string() + " is not a regular file, so not a fabric segment" + advice);
    if (static_cast<std::uint64_t>(st.st_size) != kSize)
        throw Error(path.string() + " is not a partlink fabric segment (size " +
                    std::to_string(st.st_size) + " bytes, expected " + std::to_string(kSize) + ")" +
                    advice);
    if (for_daemon && st.st_uid != ::geteuid() && ::geteuid() != 0)
        throw Error("fabric segment " + path.string() + " belongs to uid " +
                    std::to_string(st.st_uid) + ", not to this user (uid " +
                    std::to_string(::geteuid()) + ")");
}

void check_header(const partlink_fabric& fabric, const fs::path& path, bool for_daemon) {
    std::string advice = for_daemon ? ": " + remove_advice(path) : "";
    if (fabric.magic != PARTLINK_FABRIC_MAGIC)
        throw Error(path.string() + " is not a partlink fabric segment (bad magic)" + advice);
    if (fabric.version != PARTLINK_FABRIC_VERSION)
        throw Error(path.string() + " is a fabric segment of version " +
                    std::to_string(fabric.version) + ", this partlinkd needs version " +
                    std::to_string(PARTLINK_FABRIC_VERSION) + advice);
    if (fabric.nr_ports != PARTLINK_FABRIC_PORTS)
        throw Error(path.string() + " has " + std::to_string(fabric.nr_ports) +
                    " ports, expected " + std::to_string(PARTLINK_FABRIC_PORTS) + advice);
}

void init_locks(partlink_fabric& fabric) {
    pthread_mutexattr_t attr;
    if (int err = pthread_mutexattr_init(&attr))
        throw_errno("pthread_mutexattr_init", err);
    struct AttrGuard {
        pthread_mutexattr_t* attr;
        ~AttrGuard() { pthread_mutexattr_destroy(attr); }
    } guard{&attr};
    if (int err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED))
        throw_errno("pthread_mutexattr_setpshared", err);
    if (int err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST))
        throw_errno("pthread_mutexattr_setrobust", err);
    for (auto& port : fabric.ports) {
        auto* mutex = reinterpret_cast<pthread_mutex_t*>(port.rx_lock);
        if (int err = pthread_mutex_init(mutex, &attr))
            throw_errno("pthread_mutex_init", err);
    }
}

// A temporary, unnamed (O_TMPFILE) or soon unlinked file in `dir`.
UniqueFd temporary_file(const fs::path& dir, fs::path& named) {
    UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (fd || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    std::string name = (dir / ".partlink-fabric.XXXXXX").string();
    fd.reset(::mkostemp(name.data(), O_CLOEXEC));
    if (fd)
        named = name;
    return fd;
}

// A new segment is built in a temporary file next to `path` and linked into
// place complete, so that nobody ever sees a half-initialized one.  Returns
// no fd if `path` appeared meanwhile.
UniqueFd create_segment(const fs::path& path) {
    fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    fs::path named;
    UniqueFd fd = temporary_file(dir, named);
    if (!fd)
        throw_errno("cannot create fabric segment in " + dir.string());
    struct Unlink {
        const fs::path& named;
        ~Unlink() {
            if (!named.empty())
                ::unlink(named.c_str());
        }
    } unlink_temporary{named};
    if (::ftruncate(fd.get(), kSize) < 0)
        throw_errno("cannot size fabric segment " + path.string());
    auto* fabric = map_segment(fd.get(), true, path);
    try {
        std::memset(static_cast<void*>(fabric), 0, kSize);
        init_locks(*fabric);
        fabric->nr_ports = PARTLINK_FABRIC_PORTS;
        fabric->version = PARTLINK_FABRIC_VERSION;
        fabric->magic = PARTLINK_FABRIC_MAGIC;
    } catch (...) {
        ::munmap(fabric, kSize);
        throw;
    }
    ::munmap(fabric, kSize);
    if (::fsync(fd.get()) < 0)
        throw_errno("cannot write fabric segment " + path.string());
    int rc;
    if (named.empty()) {
        std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
        rc = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW);
    } else {
        rc = ::link(named.c_str(), path.c_str());
    }
    if (rc < 0) {
        if (errno == EEXIST)
            return UniqueFd();
        throw_errno("cannot create fabric segment " + path.string());
    }
    return fd;
}

} // namespace

std::string port_name(const partlink_fabric_port& port) {
    return std::string(port.name, strnlen(port.name, sizeof(port.name)));
}

std::string format_mac(const std::uint8_t (&mac)[6]) {
    char text[18];
    std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                  mac[3], mac[4], mac[5]);
    return text;
}

std::uint64_t load_counter(const partlink_fabric_port& port, unsigned index) {
    if (index >= PARTLINK_NR_COUNTERS)
        throw Error("counter index " + std::to_string(index) + " out of range");
    return __atomic_load_n(&port.counters[index], __ATOMIC_RELAXED);
}

Segment::Segment(fs::path path, UniqueFd fd, partlink_fabric* fabric, bool writable, bool created)
    : path_(std::move(path))
    , fd_(std::move(fd))
    , fabric_(fabric)
    , writable_(writable)
    , created_(created) {}

Segment::Segment(Segment&& other) noexcept
    : path_(std::move(other.path_))
    , fd_(std::move(other.fd_))
    , fabric_(std::exchange(other.fabric_, nullptr))
    , writable_(other.writable_)
    , created_(other.created_) {}

Segment& Segment::operator=(Segment&& other) noexcept {
    if (this != &other) {
        unmap();
        path_ = std::move(other.path_);
        fd_ = std::move(other.fd_);
        fabric_ = std::exchange(other.fabric_, nullptr);
        writable_ = other.writable_;
        created_ = other.created_;
    }
    return *this;
}

Segment::~Segment() {
    unmap();
}

void Segment::unmap() noexcept {
    if (fabric_)
        ::munmap(fabric_, kSize);
    fabric_ = nullptr;
}

Segment Segment::open_or_create(const fs::path& path) {
    for (int attempt = 0; attempt < 2; ++attempt) {
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
        if (!fd && errno == ENOENT) {
            fd = create_segment(path);
            if (!fd)
                continue; // lost a race with another creator: open theirs
            auto* fabric = map_segment(fd.get(), true, path);
            return Segment(path, std::move(fd), fabric, true, true);
        }
        if (!fd) {
            if (errno == ELOOP)
                throw Error("fabric segment " + path.string() +
                            " is a symbolic link; give the real path");
            throw_errno("cannot open fabric segment " + path.string());
        }
        check_existing(fd.get(), path, true);
        auto* fabric = map_segment(fd.get(), true, path);
        Segment segment(path, std::move(fd), fabric, true, false);
        check_header(*fabric, path, true);
        return segment;
    }
    throw Error("cannot create fabric segment " + path.string());
}

Segment Segment::open_readonly(const fs::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT)
            throw Error("no fabric segment at " + path.string() + " (is partlinkd running?)");
        throw_errno("cannot open fabric segment " + path.string());
    }
    check_existing(fd.get(), path, false);
    auto* fabric = map_segment(fd.get(), false, path);
    Segment segment(path, std::move(fd), fabric, false, false);
    check_header(*fabric, path, false);
    return segment;
}

const partlink_fabric_port& Segment::port(unsigned index) const {
    if (index >= PARTLINK_FABRIC_PORTS)
        throw Error("port " + std::to_string(index) + " out of range");
    return fabric_->ports[index];
}

partlink_fabric& Segment::fabric_rw() {
    if (!writable_)
        throw Error("fabric segment " + path_.string() + " is open read-only");
    return *fabric_;
}

partlink_fabric_port& Segment::port_rw(unsigned index) {
    if (index >= PARTLINK_FABRIC_PORTS)
        throw Error("port " + std::to_string(index) + " out of range");
    return fabric_rw().ports[index];
}

PortLock::PortLock(partlink_fabric_port& port, int index)
    : mutex_(reinterpret_cast<pthread_mutex_t*>(port.rx_lock)) {
    int err = pthread_mutex_lock(mutex_);
    if (err == EOWNERDEAD) {
        pthread_mutex_consistent(mutex_);
        recovered_ = true;
        std::string which = index >= 0 ? "port " + std::to_string(index) : "a port";
        std::string name = port_name(port);
        if (!name.empty())
            which += " (" + name + ")";
        g_lock_log.load()("a process died holding the RX lock of " + which + "; lock recovered");
        return;
    }
    if (err == ENOTRECOVERABLE)
        throw Error((index >= 0 ? "the RX lock of port " + std::to_string(index)
                                : std::string("a port lock")) +
                    " in the fabric segment is unrecoverable: stop all partlink VMs, remove the "
                    "segment and start partlinkd again");
    if (err != 0)
        throw_errno("cannot take port lock", err);
}

PortLock::~PortLock() {
    pthread_mutex_unlock(mutex_);
}

void set_lock_log(LockLog log) {
    g_lock_log.store(log ? log : default_lock_log);
}

std::uint32_t next_epoch(std::uint32_t epoch) {
    return epoch + 1 == 0 ? 1 : epoch + 1;
}

bool pid_alive(pid_t pid) {
    if (pid <= 0)
        return false;
    return ::kill(pid, 0) == 0 || errno != ESRCH;
}

std::vector<CleanedPort> clean_dead_ports(Segment& segment,
                                          const std::function<bool(unsigned)>& skip) {
    std::vector<CleanedPort> cleaned;
    for (unsigned i = 0; i < PARTLINK_FABRIC_PORTS; ++i) {
        auto& port = segment.port_rw(i);
        // A look without the lock first: the data path takes these locks,
        // this runs every few seconds.
        auto up = [&] {
            return __atomic_load_n(&port.state, __ATOMIC_ACQUIRE) == PARTLINK_PORT_UP;
        };
        if (!up() || pid_alive(port.pid) || (skip && skip(i)))
            continue;
        PortLock lock(port, static_cast<int>(i));
        if (!up() || pid_alive(port.pid))
            continue;
        CleanedPort gone{i, port.epoch, port.network, port.pid, port_name(port)};
        __atomic_store_n(&port.rx_ready, 0u, __ATOMIC_RELEASE);
        __atomic_store_n(&port.state, static_cast<__u32>(PARTLINK_PORT_FREE), __ATOMIC_RELEASE);
        __atomic_store_n(&port.epoch, next_epoch(port.epoch), __ATOMIC_RELEASE);
        cleaned.push_back(std::move(gone));
    }
    return cleaned;
}

} // namespace partlink::fabric
