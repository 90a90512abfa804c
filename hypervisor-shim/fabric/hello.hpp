// Validation of a device's HELLO, which is hostile input: every field, the
// fds that came with it and the files behind them are checked before the
// broker looks at it.
#pragma once

#include <string>
#include <vector>

#include "partlink/partlink_abi.h"
#include "protocol.hpp"
#include "unique_fd.hpp"

namespace partlink::fabric {

// A HELLO that passed every check.
struct Hello {
    // Normalized: padding, epoch and unused regions zeroed, the name
    // NUL-padded, so that it can be forwarded in PEER_UP as is (after
    // setting the epoch).
    partlink_msg_port port{};
    std::string name;
    // fds[0]: the doorbell eventfd; fds[1..]: the RAM fds.
    std::vector<UniqueFd> fds;
};

// The payload a HELLO may have: the whole struct partlink_msg_port, or the
// struct up to its last used region (offsetof(regions) + nr_regions * 32).
// Throws ProtocolError with the precise reason, starting "HELLO: ".
Hello check_hello(Received message);

// The checks on their own, for the tests and for error messages elsewhere.
bool name_ok(const char (&name)[PARTLINK_NAME_LEN], std::string& reason);
bool mac_ok(const std::uint8_t (&mac)[6], std::string& reason);
bool is_eventfd(int fd);

} // namespace partlink::fabric
