// `partlink up`: boot a set of partitions and wait until each answers ssh.
// Either every partition is up when it returns, or it throws and nothing it
// started is left running.
#pragma once

#include "layout.hpp"
#include "options.hpp"
#include "output.hpp"
#include "run_dir.hpp"

namespace partlink {

void bring_up(const UpOptions& options, const Layout& layout, const RunDir& dir, const Output& out);

} // namespace partlink
