// `partlink up`: boot a set of partitions and wait until each answers ssh.
// Either every partition is up when it returns, or it throws and nothing it
// started is left running.
#pragma once

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/options.hpp"
#include "run/run_dir.hpp"

namespace partlink {

void bring_up(const UpOptions& options, const Layout& layout, const RunDir& dir, const Output& out);

} // namespace partlink
