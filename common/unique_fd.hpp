// Owning file descriptor, so that every early return and exception closes it.
#pragma once

#include <unistd.h>

#include "unique_handle.hpp"

namespace partlink {

struct FdTraits {
    using Value = int;
    static constexpr int kNone = -1;
    static void close(int fd) noexcept { ::close(fd); }
};

using UniqueFd = UniqueHandle<FdTraits>;

} // namespace partlink
