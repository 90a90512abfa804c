// Sets a partition's balloon target and watches the guest give the memory
// up (or take it back).  The balloon itself is behind an interface: QMP to
// the partition's QEMU in partlinkd, a fake in tests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "audit_log.hpp"
#include "memory_directive.hpp"

namespace partlink::capacity {

// One partition's virtio-balloon.  Sizes are the guest's RAM as the balloon
// sees it (boot RAM minus what the balloon holds), in bytes as QEMU counts
// them.  Both throw Error when the balloon cannot be reached.
class Balloon {
public:
    virtual ~Balloon() = default;
    virtual void set_target(std::uint64_t bytes) = 0;
    virtual std::uint64_t actual() = 0;
};

// Opens the balloon of a partition for one directive; throws Error if it
// cannot (the QEMU is gone, its QMP socket does not answer).
using BalloonOpener = std::function<std::unique_ptr<Balloon>(const std::string& partition)>;

inline constexpr std::uint64_t kMib = 1024 * 1024;

struct MemoryEnforcerOptions {
    // How long to watch the guest move toward the target: its balloon
    // driver works in the background, and the answer must reach the guest
    // well before the device gives up on it (PARTLINK_MBOX_TIMEOUT_MS).
    std::chrono::milliseconds window{2000};
    std::chrono::milliseconds poll{100};
    // Tests replace the wait.
    std::function<void(std::chrono::milliseconds)> sleep;
};

class MemoryEnforcer {
public:
    explicit MemoryEnforcer(BalloonOpener open, MemoryEnforcerOptions options = {});

    // Refused outcomes are only recorded.  Otherwise sets the target and
    // polls the balloon until the guest's RAM equals it or the window ends;
    // a guest that is slow to follow is not a failure (the target stays
    // set, the record says where the guest got to), a balloon that cannot
    // be set is.  Never throws: the answer goes to a guest and into the
    // audit log.
    AuditRecord enforce(const MemoryOutcome& outcome);

private:
    BalloonOpener open_;
    MemoryEnforcerOptions options_;
};

} // namespace partlink::capacity
