// Memory directives: "give partition X this much RAM", from the WLM manager
// through the device mailbox.  Pure logic, like directive.hpp for CPU:
// deciding the balloon target, not setting it (memory_enforcer.hpp does).
//
// A memory directive sets the target's balloon target, the RAM its guest
// keeps.  Unlike CPU there is no pool to keep constant: RAM a balloon takes
// from one guest goes back to the host, and no guest can grow beyond the RAM
// it booted with.  A directive is
//   1. authorized like a CPU directive (by the port it came from, and by the
//      policy's privileged partition);
//   2. validated: the target exists and has a balloon, the MiB are positive
//      and not absurd;
//   3. clamped to the target's memory range: the policy's memory_mib, or by
//      default [half its boot RAM, its boot RAM].
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "directive.hpp"
#include "policy.hpp"

namespace partlink::capacity {

// More than this is not a memory request but garbage or a unit mix-up.
inline constexpr std::int64_t kAbsurdMib = std::int64_t{1} << 20; // 1 TiB

// The RAM each partition's guest booted with, by name: the partitions whose
// balloon partlinkd controls.
using BootMemory = std::map<std::string, std::uint64_t, std::less<>>;

// Where directives may move a partition: the policy's memory_mib or
// [boot_mib / 2, boot_mib].
MemoryTarget memory_range(const PartitionPolicy& partition, std::uint64_t boot_mib);

struct MemoryDirective {
    std::string from; // as partlinkd knows it from the port, like Directive
    std::string target;
    std::int64_t mib = 0; // as asked: may be zero, negative or absurd
};

struct MemoryOutcome {
    MemoryDirective directive;
    Verdict verdict = Verdict::refused;
    std::string reason;
    std::uint64_t target_mib = 0; // the balloon target to set, unless refused
};

MemoryOutcome evaluate_memory(const Policy& policy, const BootMemory& boot,
                              const MemoryDirective& directive);

} // namespace partlink::capacity
