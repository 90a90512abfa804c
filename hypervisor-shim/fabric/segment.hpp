// The fabric segment (ABI part 2): a file of sizeof(partlink_fabric) that
// partlinkd creates and every partlink-pci device maps MAP_SHARED.  It holds
// each port's robust, process-shared RX lock, its registration (state,
// epoch, network, flags, pid, MAC, name) and its counters.
//
// The file outlives partlinkd: a restarted daemon reuses it as it is, so the
// devices keep their mappings and the data path never stops.  `partlink
// status` opens it read-only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <pthread.h>
#include <string>
#include <string_view>
#include <vector>

#include "partlink/partlink_abi.h"
#include "unique_fd.hpp"

namespace partlink::fabric {

static_assert(sizeof(pthread_mutex_t) <= PARTLINK_LOCK_SIZE,
              "pthread_mutex_t does not fit in partlink_fabric_port::rx_lock");
static_assert(sizeof(partlink_fabric_port) == 512);

// A port's name as a string (the slot's name is NUL-padded, maybe unterminated).
std::string port_name(const partlink_fabric_port& port);
// "52:54:00:12:34:56"
std::string format_mac(const std::uint8_t (&mac)[6]);
// One 64-bit counter, read atomically (devices update them with atomics).
std::uint64_t load_counter(const partlink_fabric_port& port, unsigned index);

// A mapping of a fabric segment file.  Move-only; unmaps and closes on
// destruction.
class Segment {
public:
    // Opens the segment at `path` for reading and writing.  A missing file is
    // created and initialized (every port FREE, every rx_lock a robust,
    // process-shared mutex).  A valid existing file (magic, version, size)
    // is reused untouched; an invalid one is refused with an Error telling
    // the user what to do.  created() tells which happened.
    static Segment open_or_create(const std::filesystem::path& path);

    // Opens an existing segment read-only, for `partlink status`.  Throws
    // Error if the file is missing or not a valid segment.
    static Segment open_readonly(const std::filesystem::path& path);

    Segment(Segment&& other) noexcept;
    Segment& operator=(Segment&& other) noexcept;
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;
    ~Segment();

    const partlink_fabric& fabric() const { return *fabric_; }
    const partlink_fabric_port& port(unsigned index) const;
    // Only on a writable segment (throws Error on a read-only one).
    partlink_fabric& fabric_rw();
    partlink_fabric_port& port_rw(unsigned index);

    // The segment file, open O_RDWR (or O_RDONLY): what WELCOME hands to a
    // device.
    int fd() const { return fd_.get(); }
    const std::filesystem::path& path() const { return path_; }
    bool created() const { return created_; }
    bool writable() const { return writable_; }

private:
    Segment(std::filesystem::path path, UniqueFd fd, partlink_fabric* fabric, bool writable,
            bool created);
    void unmap() noexcept;

    std::filesystem::path path_;
    UniqueFd fd_;
    partlink_fabric* fabric_ = nullptr;
    bool writable_ = false;
    bool created_ = false;
};

// Holds one port's rx_lock.  A holder that died is recovered: the mutex is
// made consistent again (EOWNERDEAD, logged through the callback, see
// set_lock_log).  A mutex that cannot be recovered (ENOTRECOVERABLE) throws
// Error.
class PortLock {
public:
    // `index` only names the port in messages.
    explicit PortLock(partlink_fabric_port& port, int index = -1);
    ~PortLock();
    PortLock(const PortLock&) = delete;
    PortLock& operator=(const PortLock&) = delete;

    // True if the previous holder died holding the lock.
    bool recovered() const { return recovered_; }

private:
    pthread_mutex_t* mutex_;
    bool recovered_ = false;
};

// Where PortLock reports a recovered lock ("port 3: lock holder died, lock
// recovered"); default: a line on stderr prefixed "partlinkd: ".
using LockLog = void (*)(std::string_view message);
void set_lock_log(LockLog log);

struct CleanedPort {
    unsigned index;
    std::uint32_t epoch; // the epoch that ended
    std::uint32_t network;
    pid_t pid;
    std::string name;
};

// Every UP port whose pid no longer exists (and that `skip` does not
// exclude) is made FREE (rx_ready 0, epoch + 1) under its lock: what a
// restarted daemon finds of devices that died while it was away.
std::vector<CleanedPort> clean_dead_ports(Segment& segment,
                                          const std::function<bool(unsigned)>& skip = {});

// epoch + 1, skipping 0 (the epoch of a port never registered).
std::uint32_t next_epoch(std::uint32_t epoch);

// Whether a process with this pid exists (kill(pid, 0) != ESRCH).
bool pid_alive(pid_t pid);

} // namespace partlink::fabric
