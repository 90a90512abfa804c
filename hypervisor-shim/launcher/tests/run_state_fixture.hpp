// A run's state as `up` would record it, for tests that plan or place its
// partitions without booting any.
#pragma once

#include <filesystem>

#include "run/options.hpp"
#include "run/state.hpp"

namespace partlink::testing {

// vm1..vm<vms>, nothing started yet.
inline RunState state_of(int vms, const std::filesystem::path& run_dir = "/tmp/some-run") {
    RunState s;
    s.run_dir = run_dir;
    s.settings.vms = vms;
    for (int i = 1; i <= vms; ++i) {
        PartitionRecord p;
        p.name = vm_name(i);
        p.index = i;
        s.partitions.push_back(p);
    }
    return s;
}

} // namespace partlink::testing
