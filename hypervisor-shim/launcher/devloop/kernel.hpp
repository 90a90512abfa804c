// Which kernel and initramfs the partitions boot: the image's own, or one
// prepared from `up --kernel` by scripts/prepare-kernel.sh (the base
// initramfs with that release's modules and partlink.ko laid over it), and
// the kernel tree partlink.ko is built against, for `make driver`.
#pragma once

#include <filesystem>
#include <string>

#include "cli/output.hpp"
#include "run/layout.hpp"
#include "run/options.hpp"
#include "run/state.hpp"

namespace partlink {

// Throws an Error with the preparation's own messages if the kernel cannot
// be used (a missing config option, no headers to build partlink.ko with).
BootRecord resolve_boot(const BootOptions& options, const Layout& layout, const Output& out);

// A field of a module's modinfo ("vermagic", "srcversion"); empty if the
// file is no module.
std::string module_info(const std::filesystem::path& module, const char* field);

} // namespace partlink
