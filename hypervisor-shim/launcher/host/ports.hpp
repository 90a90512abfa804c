// TCP ports on 127.0.0.1 for the guests' forwarded ssh.
#pragma once

#include <cstdint>
#include <optional>

#include "unique_fd.hpp"

namespace partlink {

// A port held by a bound socket, so that two partitions being set up at
// the same time cannot get the same one.  release() right before handing
// the port to QEMU (which binds it itself).
class PortReservation {
public:
    // The given port; throws an Error naming it if it is in use.
    static PortReservation exact(std::uint16_t port);
    // A free port chosen by the kernel.
    static PortReservation any();

    std::uint16_t port() const { return port_; }
    void release() { fd_.reset(); }

private:
    PortReservation(UniqueFd fd, std::uint16_t port)
        : fd_(std::move(fd))
        , port_(port) {}
    UniqueFd fd_;
    std::uint16_t port_;
};

// Binds and closes; true if 127.0.0.1:port could be bound.
bool port_is_free(std::uint16_t port);

} // namespace partlink
