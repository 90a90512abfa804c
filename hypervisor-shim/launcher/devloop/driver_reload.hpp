// `partlink driver reload [vmN...]`: a rebuilt partlink.ko into running
// partitions, in parallel, without rebooting them.  In each guest: the new
// module arrives over ssh, the processes that hold a partlink device (the
// WLM's mailbox users, segment users) are stopped, the old module is
// unloaded and the new one loaded, pl0 gets its addresses and MTU back, the
// link must come up, and the stopped processes start again with their
// command lines.  Partitions not named keep running; their pl0 sees the
// peer leave and come back.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/state.hpp"

namespace partlink {

// What one partition reported.
struct ReloadResult {
    std::string vm;
    bool ok = false;
    std::string old_srcversion;
    std::string new_srcversion;
    std::string detail; // pl0's state, restarted processes, or the error
    std::chrono::milliseconds took{0};
};

// The script each guest runs (busybox sh); the module comes on its stdin.
std::string reload_script(std::uintmax_t module_size);

// Throws an Error before touching a guest if the module is missing or built
// for another kernel; returns one result per partition (in `vms`' order).
std::vector<ReloadResult> reload_driver(const RunState& state, const Layout& layout,
                                        const std::vector<std::string>& vms,
                                        const std::filesystem::path& module, const Output& out);

} // namespace partlink
