// `partlink run -- CMD`: boot, run one command in a partition (or each),
// shut everything down, and exit with the command's status: for scripts
// and `git bisect run`.  The command's output is ours; the launcher's
// progress goes to `out` (the CLI sends it to stderr).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/options.hpp"

namespace partlink {

// The exit status `run` returns when the partitions did not come up.
inline constexpr int kOneShotBootFailed = 1;

// `run_dir`: the user's --run-dir; nothing: a private one, removed after.
int run_one_shot(const UpOptions& options, const std::vector<std::string>& on,
                 const std::vector<std::string>& command, const Layout& layout,
                 const std::optional<std::filesystem::path>& run_dir, const Output& out);

} // namespace partlink
