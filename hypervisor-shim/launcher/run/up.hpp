// `partlink up`: boot a set of partitions and wait until each answers ssh.
// Either every partition is up when it returns, or it throws and nothing it
// started is left running.
#pragma once

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/options.hpp"
#include "run/run_dir.hpp"

namespace partlink {

// `up --dry-run`: prints each partition's QEMU command line; starts nothing
// (a --kernel is prepared, though: its paths are on the command line).
void print_qemu_command_lines(const UpOptions& options, const Layout& layout, const RunDir& dir,
                              const Output& out);

void bring_up(const UpOptions& options, const Layout& layout, const RunDir& dir, const Output& out);

} // namespace partlink
