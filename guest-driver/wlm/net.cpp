#include "net.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <string>
#include <sys/socket.h>

#include "exit_status.hpp"

namespace plwlm {
namespace {

std::uint16_t parse_port(std::string_view text, std::string_view whole, bool allow_zero) {
    unsigned value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    const unsigned lowest = allow_zero ? 0 : 1;
    if (text.empty() || ec != std::errc{} || ptr != end || value < lowest || value > 65535)
        throw UsageError("'" + std::string(whole) + "': port must be a number from " +
                         std::to_string(lowest) + " to 65535");
    return static_cast<std::uint16_t>(value);
}

std::uint32_t parse_address(std::string_view text, std::string_view whole) {
    in_addr addr{};
    const std::string host(text);
    if (::inet_pton(AF_INET, host.c_str(), &addr) != 1)
        throw UsageError("'" + std::string(whole) + "': '" + host +
                         "' is not a numeric IPv4 address such as 10.77.0.1 (the guest has "
                         "no DNS resolver)");
    return ntohl(addr.s_addr);
}

} // namespace

sockaddr_in Endpoint::sockaddr() const noexcept {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(address);
    return sa;
}

std::string Endpoint::str() const {
    in_addr addr{};
    addr.s_addr = htonl(address);
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(port);
}

Endpoint parse_endpoint(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
        throw UsageError("'" + std::string(text) + "': expected HOST:PORT, e.g. 10.77.0.1:7700");
    return {parse_address(text.substr(0, colon), text),
            parse_port(text.substr(colon + 1), text, false)};
}

Endpoint parse_listen(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return {0, parse_port(text, text, true)};
    if (colon == 0)
        throw UsageError("'" + std::string(text) +
                         "': expected [ADDR:]PORT, e.g. 7700 or 10.77.0.1:7700");
    return {parse_address(text.substr(0, colon), text),
            parse_port(text.substr(colon + 1), text, true)};
}

UdpSocket::UdpSocket()
    : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    if (!fd_)
        throw_errno("cannot create a UDP socket");
}

UdpSocket UdpSocket::bind(const Endpoint& local) {
    partlink::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        throw_errno("cannot create a UDP socket");
    const auto sa = local.sockaddr();
    if (::bind(fd.get(), reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa) != 0) {
        const int err = errno;
        std::string hint;
        if (err == EADDRINUSE)
            hint = ": another program (a manager already running?) has that port; pick "
                   "another with --listen";
        else if (err == EADDRNOTAVAIL)
            hint = ": no interface has that address; is pl0 up with it?";
        throw Error(errno_message("cannot listen on " + local.str(), err) + hint);
    }
    return UdpSocket(std::move(fd));
}

Endpoint UdpSocket::local() const {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(fd_.get(), reinterpret_cast<::sockaddr*>(&sa), &len) != 0)
        throw_errno("getsockname");
    return {ntohl(sa.sin_addr.s_addr), ntohs(sa.sin_port)};
}

void UdpSocket::send_to(const Endpoint& to, std::string_view payload) const {
    const auto sa = to.sockaddr();
    const auto n = ::sendto(fd_.get(), payload.data(), payload.size(), MSG_NOSIGNAL,
                            reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa);
    if (n >= 0)
        return;
    const int err = errno;
    std::string hint;
    if (err == ENETUNREACH || err == EHOSTUNREACH)
        hint = ": no route to the manager; is pl0 up and addressed?";
    throw Error(errno_message("cannot send a report to " + to.str(), err) + hint);
}

std::optional<UdpSocket::Datagram> UdpSocket::receive(std::size_t buffer_size) const {
    Datagram d;
    d.payload.resize(buffer_size);
    for (;;) {
        // MSG_TRUNC makes recv return the datagram's real length, so an
        // oversize one is known to be oversize rather than silently cut.
        const auto n = ::recv(fd_.get(), d.payload.data(), d.payload.size(), MSG_TRUNC);
        if (n >= 0) {
            d.size = static_cast<std::size_t>(n);
            d.payload.resize(std::min(d.size, buffer_size));
            return d;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return std::nullopt;
        // ECONNREFUSED and friends: ICMP errors for earlier sends, not ours
        // to act on; report nothing waiting.
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
            continue;
        throw_errno("cannot receive a report");
    }
}

} // namespace plwlm
