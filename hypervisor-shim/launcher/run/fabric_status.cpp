#include "run/fabric_status.hpp"

#include <stdexcept>

#include "error.hpp"
#include "segment.hpp"

namespace partlink {

const std::array<const char*, PARTLINK_NR_COUNTERS> kCounterNames = [] {
    std::array<const char*, PARTLINK_NR_COUNTERS> names{};
    names[PARTLINK_CTR_TX_PACKETS] = "tx_packets";
    names[PARTLINK_CTR_TX_BYTES] = "tx_bytes";
    names[PARTLINK_CTR_RX_PACKETS] = "rx_packets";
    names[PARTLINK_CTR_RX_BYTES] = "rx_bytes";
    names[PARTLINK_CTR_COPIES] = "copies";
    names[PARTLINK_CTR_BYTES_COPIED] = "bytes_copied";
    names[PARTLINK_CTR_RX_NO_BUFFER] = "rx_no_buffer";
    names[PARTLINK_CTR_TX_NO_BUFFER] = "tx_no_buffer";
    names[PARTLINK_CTR_BAD_DESCRIPTORS] = "bad_descriptors";
    names[PARTLINK_CTR_SPOOFED] = "spoofed";
    names[PARTLINK_CTR_NO_ROUTE] = "no_route";
    names[PARTLINK_CTR_TX_KICKS] = "tx_kicks";
    names[PARTLINK_CTR_RX_INTERRUPTS] = "rx_interrupts";
    names[PARTLINK_CTR_LINK_CHANGES] = "link_changes";
    names[PARTLINK_CTR_TX_ERRORS] = "tx_errors";
    names[PARTLINK_CTR_RX_BAD_BUFFER] = "rx_bad_buffer";
    for (const char* n : names)
        if (!n)
            throw std::logic_error("a PARTLINK_CTR_* counter has no name");
    return names;
}();

namespace {

std::uint32_t load_u32(const std::uint32_t& field) {
    return __atomic_load_n(&field, __ATOMIC_RELAXED);
}

} // namespace

PortStatus port_status(const partlink_fabric& fabric, int port) {
    PortStatus s;
    if (port < 0 || port >= PARTLINK_FABRIC_PORTS)
        return s;
    const partlink_fabric_port& me = fabric.ports[port];
    for (unsigned i = 0; i < PARTLINK_NR_COUNTERS; ++i)
        s.counters[i] = fabric::load_counter(me, i);
    s.link_up = load_u32(me.state) == PARTLINK_PORT_UP;
    if (!s.link_up)
        return s;
    const std::uint32_t network = load_u32(me.network);
    for (int i = 0; i < PARTLINK_FABRIC_PORTS; ++i) {
        const partlink_fabric_port& other = fabric.ports[i];
        if (i != port && load_u32(other.state) == PARTLINK_PORT_UP &&
            load_u32(other.network) == network)
            ++s.peers;
    }
    return s;
}

FabricSnapshot read_fabric(const std::filesystem::path& path) {
    FabricSnapshot snap;
    try {
        fabric::Segment segment = fabric::Segment::open_readonly(path);
        auto& ports = snap.ports.emplace();
        for (int i = 0; i < PARTLINK_FABRIC_PORTS; ++i)
            ports[static_cast<std::size_t>(i)] = port_status(segment.fabric(), i);
    } catch (const Error& e) {
        snap.ports.reset();
        snap.error = e.what();
    }
    return snap;
}

} // namespace partlink
