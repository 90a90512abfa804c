// The registration table: which connection holds which port, what each
// device said in its HELLO, and who must hear about whom.  It writes the
// port slots of the fabric segment and returns the messages to send, so that
// it can be tested without sockets; the daemon does the I/O.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "config.hpp"
#include "hello.hpp"
#include "protocol.hpp"
#include "segment.hpp"
#include "store.hpp"

namespace partlink::fabric {

// The daemon's handle for one connection.
using ClientId = std::uint64_t;

// A message for one connection.  Its fds are borrowed from the broker (or
// the segment) and stay open until the next call into the broker.
struct Outgoing {
    ClientId to = 0;
    Message message;
    bool close_after = false; // REFUSE: close the connection once sent
};

class Broker {
public:
    // One line per event, without the "partlinkd: " prefix.
    using Log = std::function<void(const std::string&)>;

    // `shared`: the shared segments whose memfds registered devices get
    // (SEGMENT) and whose sharers may ring each other (SEG_PEER); it must
    // outlive the broker.  Without it, no segments.
    Broker(Segment& segment, Config config, Log log, const segments::Store* shared = nullptr);
    // Leaves the port slots as they are: devices keep running without a
    // daemon and register again when one is back.
    ~Broker() = default;
    Broker(const Broker&) = delete;
    Broker& operator=(const Broker&) = delete;

    // A connection from process `pid` sent a HELLO that passed check_hello.
    // Returns WELCOME and the PEER_UP announcements, or a REFUSE.
    std::vector<Outgoing> hello(ClientId client, pid_t pid, Hello hello);

    // A connection broke the protocol (or is not allowed): REFUSE and close.
    std::vector<Outgoing> refuse(ClientId client, const std::string& who,
                                 const std::string& reason);

    // A connection is gone (EOF, error, refused).  If it held a port: the
    // slot becomes FREE with a new epoch and its network's other ports get
    // PEER_DOWN.  Its fds are closed.
    std::vector<Outgoing> disconnect(ClientId client);

    // Frees the ports of devices that died while not connected to this
    // daemon (while it was down, or before they registered again) and tells
    // their networks with PEER_DOWN.  The daemon calls it at start and every
    // few seconds.  Devices that register again later also get PEER_DOWN
    // for such ports of their network, which they may still have mapped.
    std::vector<Outgoing> sweep();

    // The shared segments' store has just applied a new table: SEGMENT_GONE
    // and SEGMENT to each registered device as `applied` says, then SEG_PEER
    // wherever what two devices share changed.
    std::vector<Outgoing> segments_changed(const segments::Applied& applied);
    // The registered partitions holding segment `id` (sent its memfd).
    std::vector<std::string> holders(std::uint32_t id) const;

    std::optional<unsigned> port_of(ClientId client) const;
    // The name and PARTLINK_PORT_* flags a registered connection holds.
    struct PortIdentity {
        unsigned port = 0;
        std::string name;
        std::uint32_t flags = 0;
    };
    std::optional<PortIdentity> identity_of(ClientId client) const;
    std::size_t registrations() const { return clients_.size(); }
    const Config& config() const { return config_; }

private:
    struct Registration {
        ClientId client = 0;
        pid_t pid = 0;
        std::string name;
        std::uint32_t network = 0;
        std::uint32_t flags = 0;
        partlink_msg_port port{};  // as announced in PEER_UP, with the epoch
        std::vector<UniqueFd> fds; // the doorbell eventfd first
        // The segments it was told it shares with each port (SEG_PEER).
        std::array<std::uint64_t, PARTLINK_FABRIC_PORTS> told_shared{};
    };

    std::vector<int> fds_of(const Registration& registration) const;
    // A slot that a live device owns: registered here, or UP for a process
    // that still exists (a device that has not re-registered after a
    // daemon restart yet).
    bool slot_live(unsigned index) const;
    std::string conflict(const Hello& hello) const;
    // SEGMENT for segment `id` to `to`.
    Outgoing segment_message(const Registration& to, std::uint32_t id) const;
    // SEG_PEER to `to` about `about` if what they share changed.
    void tell_shared(Registration& to, const Registration& about, std::vector<Outgoing>& out);
    // Whether a port going away concerns `other`: same network, or a
    // segment shared with it.
    bool concerns(const Registration& other, std::uint32_t network, unsigned port) const;

    Segment& segment_;
    Config config_;
    Log log_;
    const segments::Store* shared_;
    std::array<std::optional<Registration>, PARTLINK_FABRIC_PORTS> ports_;
    std::map<ClientId, unsigned> clients_;
    // Ports freed by sweep(), until registered again.
    std::array<std::optional<CleanedPort>, PARTLINK_FABRIC_PORTS> gone_;
};

// "vm2 (port 2, pid 1234)"
std::string describe(const std::string& name, unsigned port, pid_t pid);

} // namespace partlink::fabric
