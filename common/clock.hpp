// Clock readings in seconds, as doubles: what rates, deadlines and report
// timestamps are computed in.
#pragma once

#include <chrono>

namespace partlink {

// Monotonic: for intervals and deadlines.
inline double mono_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Since the Unix epoch: for timestamps a person or another host reads.
inline double wall_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace partlink
