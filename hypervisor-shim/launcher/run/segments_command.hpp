// `partlink segments`: the shared segments of a running fabric, from the
// state partlinkd writes (RUN/segments-state.json), and `segments load`,
// which replaces the table on running partitions: it checks the new table,
// prints what changes, puts it where partlinkd reads it (RUN/segments.json)
// and has partlinkd reload it (SIGHUP), waiting for its verdict.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "run/run_dir.hpp"
#include "table.hpp"

namespace partlink {

// The table partlinkd serves now, from its state file.  Throws Error saying
// what to do when there is none (no run, or a run without --segments).
segments::Table loaded_segments(const RunDir& dir);

int run_segments_list(const RunDir& dir, bool json);
int run_segments_load(const RunDir& dir, const std::filesystem::path& file, bool dry_run);

} // namespace partlink
