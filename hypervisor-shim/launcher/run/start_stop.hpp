// `partlink start VM` and `partlink stop VM`: one partition of a running
// run, while the others (and partlinkd, or the bridge) stay up.  `start`
// boots the partition again with exactly its recorded QEMU command line
// (same MACs, fabric port and, if it is still free, ssh port) and waits
// until it answers ssh, as `up` does; `stop` quits its QEMU (QMP quit, then
// SIGTERM, then SIGKILL) and records it as stopped.
#pragma once

#include <string>

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/options.hpp"
#include "run/run_dir.hpp"

namespace partlink {

// Throws an Error if nothing is up, the partition is unknown (a UsageError),
// still running, or what it attaches to (partlinkd, the bridge) is gone;
// and if it does not come up, after stopping its QEMU again.
void start_partition(const StartOptions& options, const Layout& layout, const RunDir& dir,
                     const Output& out);

// Stopping a partition that is not running only records it as stopped.
void stop_partition(const std::string& vm, const RunDir& dir, const Output& out);

} // namespace partlink
