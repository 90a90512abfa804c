// `partlink gdb vmN`: gdb attached to the partition's gdbstub (`up --gdb`),
// with the kernel's symbols when a vmlinux with them is known and
// partlink.ko's at the address the guest loaded it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "host/ssh.hpp"
#include "run/layout.hpp"
#include "run/state.hpp"

namespace partlink {

// The partlink.ko files that may be what partition `p` runs, most likely
// first: the one `driver reload` last put there, `make driver`'s for the
// run's release, the one its kernel booted with.
std::vector<std::filesystem::path>
candidate_modules(const RunState& state, const PartitionRecord& p, const Layout& layout);

// Where `driver reload` records the module it loaded into partition N.
std::filesystem::path reloaded_module_record(const RunState& state, const PartitionRecord& p);

// partlink.ko as loaded in the guest: the file with its symbols and the
// address of its .text ("0xffffffffc0a00000").
struct LoadedModule {
    std::filesystem::path file;
    std::string text_address;
};

// gdb's command line.
std::vector<std::string> build_gdb_argv(const RunState& state, const PartitionRecord& p,
                                        const std::optional<LoadedModule>& module,
                                        const std::vector<std::string>& extra);

// Only returns by throwing: on success this process becomes gdb.
[[noreturn]] void exec_gdb(const RunState& state, const PartitionRecord& p, const Layout& layout,
                           const SshTarget& ssh, const std::vector<std::string>& extra);

} // namespace partlink
