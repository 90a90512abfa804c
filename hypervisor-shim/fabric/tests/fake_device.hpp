// Test helpers: a temporary directory, and a fake partlink-pci device (guest
// RAM in a memfd, a doorbell eventfd, a HELLO describing them) that can
// register with a broker or with a real partlinkd over its socket.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include "hello.hpp"
#include "partlink/partlink_abi.h"
#include "protocol.hpp"
#include "unique_fd.hpp"

namespace partlink::fabric::test {

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "plfab.XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// The payload of a message the broker wants sent, as its struct.
template <typename T>
T payload_of(const Message& message) {
    T value{};
    if (message.payload.size() != sizeof(T))
        throw std::runtime_error("payload of " + std::to_string(message.payload.size()) +
                                 " bytes, expected " + std::to_string(sizeof(T)));
    std::memcpy(&value, message.payload.data(), sizeof(T));
    return value;
}

inline UniqueFd make_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd)
        throw std::runtime_error("eventfd failed");
    return fd;
}

inline UniqueFd make_memfd(std::size_t size, const char* name = "guest-ram") {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC));
    if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(size)) < 0)
        throw std::runtime_error("memfd failed");
    return fd;
}

inline UniqueFd dup_fd(int fd) {
    return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// A valid HELLO payload: one region of `ram_size` bytes at gpa 0 in fd 1.
inline partlink_msg_port make_port(unsigned port, const std::string& name,
                                   std::size_t ram_size = 1 << 20) {
    partlink_msg_port p{};
    p.abi_version = PARTLINK_ABI_VERSION;
    p.port = port;
    p.nr_regions = 1;
    const std::uint8_t mac[6] = {0x52, 0x54, 0x00, 0x00, 0x00, static_cast<std::uint8_t>(port + 1)};
    std::memcpy(p.mac, mac, sizeof(mac));
    std::strncpy(p.name, name.c_str(), sizeof(p.name) - 1);
    p.regions[0] = {0, ram_size, 0, 1, 0};
    return p;
}

// A received message with the given payload and (duplicated) fds.
inline Received make_received(std::uint32_t type, const void* payload, std::size_t len,
                              std::vector<int> fds) {
    Received r;
    r.type = type;
    r.payload.assign(static_cast<const std::uint8_t*>(payload),
                     static_cast<const std::uint8_t*>(payload) + len);
    for (int fd : fds)
        r.fds.push_back(dup_fd(fd));
    return r;
}

// Maps a RAM fd shared and read-write, unmapped on destruction.
class Mapping {
public:
    Mapping(int fd, std::size_t size)
        : size_(size) {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            throw std::runtime_error("mmap failed");
        data_ = static_cast<char*>(p);
    }
    ~Mapping() { ::munmap(data_, size_); }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    char* data() const { return data_; }

private:
    char* data_;
    std::size_t size_;
};

struct FakeDevice {
    FakeDevice(unsigned port, const std::string& name, std::size_t ram_size = 1 << 20)
        : doorbell(make_eventfd())
        , ram(make_memfd(ram_size))
        , ram_size(ram_size)
        , msg(make_port(port, name, ram_size)) {}

    UniqueFd doorbell;
    UniqueFd ram;
    std::size_t ram_size;
    partlink_msg_port msg;
    UniqueFd sock;

    Message hello() const { return make_hello(msg, std::vector<int>{doorbell.get(), ram.get()}); }

    // Received HELLO, as check_hello and the broker want it.
    Received received_hello() const {
        return make_received(PARTLINK_MSG_HELLO, &msg, sizeof(msg), {doorbell.get(), ram.get()});
    }

    void connect(const std::filesystem::path& socket) {
        sock.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
        if (!sock || ::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0)
            throw std::runtime_error("cannot connect to " + socket.string() + ": " +
                                     std::strerror(errno));
    }
    void send_hello() { send_message(sock.get(), hello()); }
    Received receive(int timeout_ms = 5000) { return receive_message(sock.get(), timeout_ms); }
};

} // namespace partlink::fabric::test
