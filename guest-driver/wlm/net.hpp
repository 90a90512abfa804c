// UDP endpoints and sockets for monitor -> manager reports.
//
// Addresses are numeric IPv4 only: the guest is a static binary in a busybox
// initramfs, with no resolver to ask, and pl0 addresses are numeric anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <netinet/in.h>
#include <optional>
#include <string>
#include <string_view>

#include "unique_fd.hpp"

namespace plwlm {

struct Endpoint {
    std::uint32_t address = 0; // host byte order; 0 = any
    std::uint16_t port = 0;

    sockaddr_in sockaddr() const noexcept;
    std::string str() const;
};

// "HOST:PORT", HOST a dotted IPv4 address, PORT 1-65535. UsageError
// otherwise, naming what is wrong.
Endpoint parse_endpoint(std::string_view text);

// "[ADDR:]PORT" for listening; ADDR defaults to 0.0.0.0, PORT 0 picks a free
// port (tests use it).
Endpoint parse_listen(std::string_view text);

class UdpSocket {
public:
    // Unbound, for sending.
    UdpSocket();
    // Bound to `local`, non-blocking, for receiving.
    static UdpSocket bind(const Endpoint& local);

    int fd() const noexcept { return fd_.get(); }
    // Where it is bound (the real port when asked for 0).
    Endpoint local() const;

    // Throws plwlm::Error on failure, with a hint for the common ones.
    void send_to(const Endpoint& to, std::string_view payload) const;

    struct Datagram {
        std::string payload;  // at most the buffer size...
        std::size_t size = 0; // ...of the datagram's real size
    };
    // Empty when nothing is waiting.
    std::optional<Datagram> receive(std::size_t buffer_size) const;

private:
    explicit UdpSocket(partlink::UniqueFd fd)
        : fd_(std::move(fd)) {}
    partlink::UniqueFd fd_;
};

} // namespace plwlm
