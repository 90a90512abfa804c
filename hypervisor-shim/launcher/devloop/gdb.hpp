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

// The partlink.ko whose symbols match what the guest runs, best guess: the
// one `make driver` built for the run's release, else the image's.
std::filesystem::path built_module(const RunState& state, const Layout& layout);

// gdb's command line.  `module_text`: partlink.ko's .text address in the
// guest ("0xffffffffc0a00000"), if it could be read.
std::vector<std::string> build_gdb_argv(const RunState& state, const PartitionRecord& p,
                                        const Layout& layout,
                                        const std::optional<std::string>& module_text,
                                        const std::vector<std::string>& extra);

// Only returns by throwing: on success this process becomes gdb.
[[noreturn]] void exec_gdb(const RunState& state, const PartitionRecord& p, const Layout& layout,
                           const SshTarget& ssh, const std::vector<std::string>& extra);

} // namespace partlink
