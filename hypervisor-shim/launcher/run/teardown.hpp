// Stopping a run and removing what it created: used by `down`, by `up` when
// it finds a crashed run's leftovers, and by `up` when a boot fails.  Works
// from the state file when it can and from what is on the host when it
// cannot (corrupt or missing state, launcher killed half way).
#pragma once

#include <string>
#include <vector>

#include "cli/output.hpp"
#include "run/run_dir.hpp"

namespace partlink {

struct TeardownReport {
    int qemus_stopped = 0;
    int daemons_stopped = 0; // partlinkd
    int interfaces_removed = 0;
    int cgroups_removed = 0;
    bool state_removed = false;
    std::vector<std::string> errors;

    bool did_anything() const {
        return qemus_stopped || daemons_stopped || interfaces_removed || cgroups_removed ||
               state_removed;
    }
};

// Leftovers of an earlier run, for `up` to decide whether to clean first.
struct Leftovers {
    bool state_file = false;
    std::vector<std::string> live_qemus; // names
    std::vector<pid_t> live_daemons;     // partlinkd
    std::vector<std::string> interfaces; // on the host, ours by name
    std::vector<int> pid_files;
    bool cgroups = false; // <cpu root>/partlink/<run-id> exists

    bool any() const {
        return state_file || !live_qemus.empty() || !live_daemons.empty() || !interfaces.empty() ||
               !pid_files.empty() || cgroups;
    }
};
Leftovers find_leftovers(const RunDir& dir);

// The caller holds the run directory's exclusive lock.  Never throws for a
// step that fails: it goes on with the next and lists the failure in errors.
TeardownReport tear_down(const RunDir& dir, const Output& out);

} // namespace partlink
