// `partlink console vmN`: the terminal on a partition's serial port.  QEMU
// serves the port on a unix socket (and logs it to RUN/vmN.console); this
// relays between the socket and the terminal, raw, until the detach key.
#pragma once

#include <filesystem>
#include <string>

namespace partlink {

// Ctrl-], as telnet and virsh console.
inline constexpr char kConsoleDetachKey = 0x1d;

// Returns when the user detaches (0) or QEMU closes the port (0, after a
// note).  Throws an Error if the socket does not answer.
int attach_console(const std::filesystem::path& socket, const std::string& vm);

} // namespace partlink
