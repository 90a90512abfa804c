#include "host/ports.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "error.hpp"

namespace partlink {

namespace {

// Nothing (with errno set) if the port cannot be bound.
std::optional<UniqueFd> bind_loopback(std::uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        throw_errno("cannot create a socket");
    // QEMU's slirp binds with SO_REUSEADDR too, so a port in TIME_WAIT is
    // usable for it and must count as free here.
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return std::nullopt;
    // Listening makes the reservation real: a second SO_REUSEADDR bind to a
    // listening port fails.
    if (::listen(fd.get(), 1) != 0)
        return std::nullopt;
    return fd;
}

} // namespace

PortReservation PortReservation::exact(std::uint16_t port) {
    auto fd = bind_loopback(port);
    if (!fd)
        throw Error("port " + std::to_string(port) +
                    " on 127.0.0.1 is in use; pick another --ssh-port or omit it to choose free "
                    "ports");
    return PortReservation(std::move(*fd), port);
}

PortReservation PortReservation::any() {
    auto fd = bind_loopback(0);
    if (!fd)
        throw_errno("cannot bind a free port on 127.0.0.1");
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd->get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw_errno("getsockname");
    return PortReservation(std::move(*fd), ntohs(addr.sin_port));
}

bool port_is_free(std::uint16_t port) {
    return bind_loopback(port).has_value();
}

} // namespace partlink
