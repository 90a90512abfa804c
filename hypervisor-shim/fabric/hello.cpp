#include "hello.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.hpp"

namespace partlink::fabric {

namespace {

constexpr std::size_t kRegionsOffset = offsetof(partlink_msg_port, regions);

[[noreturn]] void refuse(const std::string& reason) {
    throw ProtocolError("HELLO: " + reason);
}

std::string hex(std::uint64_t value) {
    char text[24];
    std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
    return text;
}

std::string region_name(unsigned index) {
    return "region " + std::to_string(index);
}

struct FileInfo {
    std::uint64_t size;
};

// A RAM fd: a regular file (memfd, hugetlbfs, tmpfs file) open read-write.
FileInfo check_ram_fd(int fd, unsigned index) {
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        refuse("cannot stat RAM fd " + std::to_string(index) + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        refuse("fd " + std::to_string(index) +
               " is not a RAM file (memfd or regular file); is guest RAM shared?");
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) != O_RDWR)
        refuse("RAM fd " + std::to_string(index) + " is not open read-write");
    return FileInfo{static_cast<std::uint64_t>(st.st_size)};
}

} // namespace

bool is_eventfd(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return false;
    char link[64] = {};
    std::string proc = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = ::readlink(proc.c_str(), link, sizeof(link) - 1);
    return n > 0 && std::string_view(link, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]";
}

bool name_ok(const char (&name)[PARTLINK_NAME_LEN], std::string& reason) {
    std::size_t len = strnlen(name, PARTLINK_NAME_LEN);
    if (len == PARTLINK_NAME_LEN) {
        reason =
            "name is not NUL-terminated within " + std::to_string(PARTLINK_NAME_LEN) + " bytes";
        return false;
    }
    if (len == 0) {
        reason = "name is empty";
        return false;
    }
    for (std::size_t i = 0; i < len; ++i) {
        auto c = static_cast<unsigned char>(name[i]);
        if (c < 0x20 || c > 0x7e) {
            reason = "name has a non-printable byte " + hex(c) + " at offset " + std::to_string(i);
            return false;
        }
    }
    return true;
}

bool mac_ok(const std::uint8_t (&mac)[6], std::string& reason) {
    if (std::all_of(std::begin(mac), std::end(mac), [](std::uint8_t b) { return b == 0; })) {
        reason = "MAC is all zeros";
        return false;
    }
    if (mac[0] & 1) {
        reason = "MAC " + format_mac(mac) + " is multicast; a port needs a unicast MAC";
        return false;
    }
    return true;
}

Hello check_hello(Received message) {
    if (message.type != PARTLINK_MSG_HELLO)
        throw ProtocolError("expected HELLO, got " + message_name(message.type));

    // Length: at least up to nr_regions, then consistent with it.
    const auto& payload = message.payload;
    if (payload.size() < kRegionsOffset)
        refuse("payload of " + std::to_string(payload.size()) + " bytes is truncated (at least " +
               std::to_string(kRegionsOffset) + " needed)");
    Hello hello;
    auto& port = hello.port;
    std::memcpy(&port, payload.data(), std::min(payload.size(), sizeof(port)));

    if (port.abi_version != PARTLINK_ABI_VERSION)
        refuse("ABI version " + std::to_string(port.abi_version) + ", this partlinkd speaks " +
               std::to_string(PARTLINK_ABI_VERSION));
    if (port.port >= PARTLINK_FABRIC_PORTS)
        refuse("port " + std::to_string(port.port) + " out of range (0.." +
               std::to_string(PARTLINK_FABRIC_PORTS - 1) + ")");
    if (port.nr_regions < 1 || port.nr_regions > PARTLINK_MAX_REGIONS)
        refuse(std::to_string(port.nr_regions) + " RAM regions (1.." +
               std::to_string(PARTLINK_MAX_REGIONS) + " allowed)");
    const std::size_t short_len = kRegionsOffset + port.nr_regions * sizeof(partlink_ram_region);
    if (payload.size() != sizeof(partlink_msg_port) && payload.size() != short_len)
        refuse("payload of " + std::to_string(payload.size()) + " bytes for " +
               std::to_string(port.nr_regions) + " regions (expected " + std::to_string(short_len) +
               " or " + std::to_string(sizeof(partlink_msg_port)) + ")");

    std::string reason;
    if (!name_ok(port.name, reason))
        refuse(reason);
    if (!mac_ok(port.mac, reason))
        refuse(reason);

    // fds: the doorbell, then every RAM fd some region refers to.
    const std::size_t nfds = message.fds.size();
    if (nfds < 2)
        refuse(std::to_string(nfds) + " fds; a doorbell eventfd and at least one RAM fd needed");
    std::set<std::uint32_t> used;
    for (unsigned i = 0; i < port.nr_regions; ++i) {
        auto index = port.regions[i].fd_index;
        if (index < 1 || index >= nfds)
            refuse(region_name(i) + ": fd_index " + std::to_string(index) + " out of range (1.." +
                   std::to_string(nfds - 1) + " with " + std::to_string(nfds) + " fds)");
        used.insert(index);
    }
    if (used.size() != nfds - 1)
        refuse(std::to_string(nfds) + " fds but the regions refer to " +
               std::to_string(used.size()) + " RAM fds (1 + distinct RAM fds expected)");
    if (!is_eventfd(message.fds[0].get()))
        refuse("fd 0 (the doorbell) is not an eventfd");
    std::vector<FileInfo> files(nfds);
    for (std::size_t i = 1; i < nfds; ++i)
        files[i] = check_ram_fd(message.fds[i].get(), static_cast<unsigned>(i));

    // Regions: inside their file, no overflow, no two covering the same
    // guest-physical address.  (No alignment: peers map whole files.)
    for (unsigned i = 0; i < port.nr_regions; ++i) {
        const auto& r = port.regions[i];
        std::uint64_t file_end;
        std::uint64_t gpa_end;
        if (r.size == 0)
            refuse(region_name(i) + " is empty");
        if (__builtin_add_overflow(r.offset, r.size, &file_end))
            refuse(region_name(i) + ": offset " + hex(r.offset) + " + size " + hex(r.size) +
                   " overflows");
        if (__builtin_add_overflow(r.gpa, r.size, &gpa_end))
            refuse(region_name(i) + ": gpa " + hex(r.gpa) + " + size " + hex(r.size) +
                   " overflows");
        if (file_end > files[r.fd_index].size)
            refuse(region_name(i) + ": bytes " + hex(r.offset) + ".." + hex(file_end) +
                   " beyond the end of RAM fd " + std::to_string(r.fd_index) + " (" +
                   hex(files[r.fd_index].size) + " bytes)");
        for (unsigned j = 0; j < i; ++j) {
            const auto& o = port.regions[j];
            if (r.gpa < o.gpa + o.size && o.gpa < gpa_end)
                refuse(region_name(i) + " [" + hex(r.gpa) + ", " + hex(gpa_end) + ") overlaps " +
                       region_name(j) + " [" + hex(o.gpa) + ", " + hex(o.gpa + o.size) + ")");
        }
    }

    // Normalize what will be forwarded.
    partlink_msg_port clean{};
    clean.abi_version = port.abi_version;
    clean.port = port.port;
    clean.nr_regions = port.nr_regions;
    std::memcpy(clean.mac, port.mac, sizeof(clean.mac));
    std::memcpy(clean.name, port.name, strnlen(port.name, sizeof(port.name)));
    for (unsigned i = 0; i < port.nr_regions; ++i) {
        clean.regions[i].gpa = port.regions[i].gpa;
        clean.regions[i].size = port.regions[i].size;
        clean.regions[i].offset = port.regions[i].offset;
        clean.regions[i].fd_index = port.regions[i].fd_index;
    }
    hello.port = clean;
    hello.name = clean.name;
    hello.fds = std::move(message.fds);
    return hello;
}

} // namespace partlink::fabric
