// What `partlink status` shows of the fabric: a port's link, its reachable
// peers and its counters, read from the fabric segment (RUN/fabric) that
// partlinkd owns and the devices update.  Read-only: status never changes
// the fabric.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "partlink/partlink_abi.h"

namespace partlink {

// Every PARTLINK_CTR_* by index, as lowercase names: "tx_packets", ...
extern const std::array<const char*, PARTLINK_NR_COUNTERS> kCounterNames;

struct PortStatus {
    bool link_up = false; // the port is PARTLINK_PORT_UP
    int peers = 0;        // other UP ports of its network
    std::array<std::uint64_t, PARTLINK_NR_COUNTERS> counters{};

    std::uint64_t counter(int index) const { return counters[static_cast<std::size_t>(index)]; }
};

// Port `port` of a segment; a port out of range is down with no counters.
PortStatus port_status(const struct partlink_fabric& fabric, int port);

// A snapshot of every port of the segment file at `path`, or the reason
// it cannot be read (missing: partlinkd has not created it yet).
struct FabricSnapshot {
    std::optional<std::array<PortStatus, PARTLINK_FABRIC_PORTS>> ports;
    std::string error;
};
FabricSnapshot read_fabric(const std::filesystem::path& path);

} // namespace partlink
