// plwlm's exit statuses, on the project's error types (common/error.hpp).
//
// Messages are shown to a person after "plwlm: ", so each says what went
// wrong and, where there is one, what to do about it.
#pragma once

#include "error.hpp"

namespace plwlm {

using partlink::errno_message;
using partlink::Error;
using partlink::throw_errno;
using partlink::UsageError;

inline constexpr int kExitOk = partlink::kExitOk;
// A runtime failure, or the hypervisor refused a directive.
inline constexpr int kExitFailure = partlink::kExitRuntime;
// Decided from the command line alone.
inline constexpr int kExitUsage = partlink::kExitUsage;
// The hypervisor channel is not there (no /dev/partlink-hv).
inline constexpr int kExitUnavailable = 3;

} // namespace plwlm
