#include "broker.hpp"

#include <cstring>

namespace partlink::fabric {

namespace {

std::string plural(std::size_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

} // namespace

std::string describe(const std::string& name, unsigned port, pid_t pid) {
    return name + " (port " + std::to_string(port) + ", pid " + std::to_string(pid) + ")";
}

Broker::Broker(Segment& segment, Config config, Log log, const segments::Store* shared)
    : segment_(segment)
    , config_(std::move(config))
    , log_(std::move(log))
    , shared_(shared) {
    if (!segment_.writable())
        throw Error("the broker needs a writable fabric segment");
}

std::optional<unsigned> Broker::port_of(ClientId client) const {
    auto it = clients_.find(client);
    if (it == clients_.end())
        return std::nullopt;
    return it->second;
}

std::optional<Broker::PortIdentity> Broker::identity_of(ClientId client) const {
    const auto port = port_of(client);
    if (!port || !ports_[*port])
        return std::nullopt;
    return PortIdentity{*port, ports_[*port]->name, ports_[*port]->flags};
}

std::vector<int> Broker::fds_of(const Registration& registration) const {
    std::vector<int> fds;
    for (const auto& fd : registration.fds)
        fds.push_back(fd.get());
    return fds;
}

bool Broker::slot_live(unsigned index) const {
    if (ports_[index])
        return true;
    const auto& slot = segment_.port(index);
    return __atomic_load_n(&slot.state, __ATOMIC_ACQUIRE) == PARTLINK_PORT_UP &&
           pid_alive(slot.pid);
}

std::vector<Outgoing> Broker::refuse(ClientId client, const std::string& who,
                                     const std::string& reason) {
    log_("refused " + who + ": " + reason);
    return {Outgoing{client, make_refuse(reason), true}};
}

// Why this HELLO cannot have its port, or "".
std::string Broker::conflict(const Hello& hello) const {
    const unsigned index = hello.port.port;
    if (const auto& holder = ports_[index])
        return "port " + std::to_string(index) + " is taken by " + holder->name + " (pid " +
               std::to_string(holder->pid) + ")";
    for (unsigned i = 0; i < PARTLINK_FABRIC_PORTS; ++i) {
        if (i == index || !slot_live(i))
            continue;
        const auto& slot = segment_.port(i);
        if (std::memcmp(slot.mac, hello.port.mac, sizeof(slot.mac)) == 0)
            return "MAC " + format_mac(hello.port.mac) + " is already used by " + port_name(slot) +
                   " (port " + std::to_string(i) + ")";
        if (port_name(slot) == hello.name)
            return "name " + hello.name + " is already used by port " + std::to_string(i) +
                   " (pid " + std::to_string(slot.pid) + ")";
    }
    return "";
}

std::vector<Outgoing> Broker::hello(ClientId client, pid_t pid, Hello hello) {
    const unsigned index = hello.port.port;
    const std::string who = describe(hello.name, index, pid);
    if (auto registered = port_of(client))
        return refuse(client, who,
                      "this connection is already registered as port " +
                          std::to_string(*registered));
    auto network = config_.network_of(hello.name);
    if (!network)
        return refuse(client, who, hello.name + " is in no network of the configuration");
    if (auto why = conflict(hello); !why.empty())
        return refuse(client, who, why);

    auto& slot = segment_.port_rw(index);
    const std::uint32_t flags = config_.flags_of(hello.name);
    std::uint32_t epoch;
    bool kept;
    {
        PortLock lock(slot, static_cast<int>(index));
        const bool up = __atomic_load_n(&slot.state, __ATOMIC_ACQUIRE) == PARTLINK_PORT_UP;
        if (up && slot.pid != pid && pid_alive(slot.pid))
            return refuse(client, who,
                          "port " + std::to_string(index) + " is held by " + port_name(slot) +
                              " (pid " + std::to_string(slot.pid) +
                              "), which has not registered again yet");
        // The same QEMU registering again (after a daemon restart) keeps its
        // epoch: its peers' mappings and its RX ring stay valid.
        kept = up && slot.pid == pid;
        epoch = kept ? slot.epoch : next_epoch(slot.epoch);
        if (!kept)
            __atomic_store_n(&slot.rx_ready, 0u, __ATOMIC_RELEASE);
        slot.network = *network;
        slot.flags = flags;
        slot.pid = pid;
        std::memcpy(slot.mac, hello.port.mac, sizeof(slot.mac));
        std::memcpy(slot.name, hello.port.name, sizeof(slot.name));
        __atomic_store_n(&slot.epoch, epoch, __ATOMIC_RELEASE);
        __atomic_store_n(&slot.state, static_cast<__u32>(PARTLINK_PORT_UP), __ATOMIC_RELEASE);
    }

    Registration registration;
    registration.client = client;
    registration.pid = pid;
    registration.name = hello.name;
    registration.network = *network;
    registration.flags = flags;
    registration.port = hello.port;
    registration.port.epoch = epoch;
    registration.fds = std::move(hello.fds);
    auto& newcomer = ports_[index].emplace(std::move(registration));
    clients_[client] = index;
    gone_[index].reset();

    std::vector<Outgoing> out;
    out.push_back(Outgoing{client, make_welcome({index, epoch, *network, flags}, segment_.fd())});
    std::size_t peers = 0;
    for (const auto& other : ports_) {
        if (!other || other->client == client || other->network != *network)
            continue;
        out.push_back(Outgoing{client, make_peer_up(other->port, fds_of(*other))});
        out.push_back(Outgoing{other->client, make_peer_up(newcomer.port, fds_of(newcomer))});
        ++peers;
    }
    std::size_t segments = 0;
    if (shared_) {
        for (const auto id : shared_->ids_of(newcomer.name)) {
            out.push_back(segment_message(newcomer, id));
            ++segments;
        }
        for (auto& other : ports_) {
            if (!other || other->client == client)
                continue;
            tell_shared(newcomer, *other, out);
            tell_shared(*other, newcomer, out);
        }
    }
    // A device that registers again may still map peers that died while no
    // daemon was there to tell it.
    if (kept)
        for (const auto& dead : gone_)
            if (dead && dead->network == *network)
                out.push_back(Outgoing{client, make_peer_down(dead->index, dead->epoch)});
    log_(who +
         (kept ? " registered again (epoch " + std::to_string(epoch) + " kept)"
               : " up (epoch " + std::to_string(epoch) + ")") +
         " in network " + config_.network_name(*network) + ", " + plural(peers, "peer") +
         (segments ? ", " + plural(segments, "shared segment") : "") +
         (flags & PARTLINK_PORT_WLM ? ", WLM" : ""));
    return out;
}

std::vector<Outgoing> Broker::sweep() {
    auto cleaned =
        clean_dead_ports(segment_, [this](unsigned index) { return ports_[index].has_value(); });
    std::vector<Outgoing> out;
    for (auto& dead : cleaned) {
        std::size_t told = 0;
        for (const auto& other : ports_)
            if (other && concerns(*other, dead.network, dead.index)) {
                out.push_back(Outgoing{other->client, make_peer_down(dead.index, dead.epoch)});
                ++told;
            }
        log_(describe(dead.name, dead.index, dead.pid) + " is gone: port freed (epoch " +
             std::to_string(dead.epoch) + " -> " + std::to_string(next_epoch(dead.epoch)) + "), " +
             plural(told, "peer") + " told");
        gone_[dead.index] = std::move(dead);
    }
    return out;
}

std::vector<Outgoing> Broker::disconnect(ClientId client) {
    auto it = clients_.find(client);
    if (it == clients_.end())
        return {};
    const unsigned index = it->second;
    clients_.erase(it);
    Registration gone = std::move(*ports_[index]);
    ports_[index].reset();

    auto& slot = segment_.port_rw(index);
    const std::uint32_t old_epoch = gone.port.epoch;
    std::uint32_t new_epoch;
    {
        PortLock lock(slot, static_cast<int>(index));
        __atomic_store_n(&slot.rx_ready, 0u, __ATOMIC_RELEASE);
        __atomic_store_n(&slot.state, static_cast<__u32>(PARTLINK_PORT_FREE), __ATOMIC_RELEASE);
        new_epoch = next_epoch(slot.epoch);
        __atomic_store_n(&slot.epoch, new_epoch, __ATOMIC_RELEASE);
    }

    std::vector<Outgoing> out;
    for (auto& other : ports_)
        if (other && concerns(*other, gone.network, index)) {
            out.push_back(Outgoing{other->client, make_peer_down(index, old_epoch)});
            other->told_shared[index] = 0;
        }
    log_(describe(gone.name, index, gone.pid) + " down (epoch " + std::to_string(old_epoch) +
         " -> " + std::to_string(new_epoch) + "), " + plural(out.size(), "peer") + " told");
    return out;
}

bool Broker::concerns(const Registration& other, std::uint32_t network, unsigned port) const {
    return other.network == network || other.told_shared[port] != 0;
}

Outgoing Broker::segment_message(const Registration& to, std::uint32_t id) const {
    return Outgoing{to.client,
                    make_segment(shared_->message(id, to.name), shared_->fd_for(id, to.name))};
}

void Broker::tell_shared(Registration& to, const Registration& about, std::vector<Outgoing>& out) {
    const unsigned port = about.port.port;
    const std::uint64_t mask = shared_ ? shared_->shared(to.name, about.name) : 0;
    if (mask == to.told_shared[port])
        return;
    out.push_back(Outgoing{to.client, make_seg_peer(port, about.port.epoch, mask,
                                                    about.fds.empty() ? -1 : about.fds[0].get())});
    to.told_shared[port] = mask;
}

std::vector<Outgoing> Broker::segments_changed(const segments::Applied& applied) {
    std::vector<Outgoing> out;
    if (!shared_)
        return out;
    for (auto& registration : ports_) {
        if (!registration)
            continue;
        const auto it = applied.partitions.find(registration->name);
        if (it == applied.partitions.end())
            continue;
        const auto& update = it->second;
        for (const auto id : update.unmap)
            out.push_back(Outgoing{registration->client, make_segment_gone(id)});
        for (const auto id : update.map)
            out.push_back(segment_message(*registration, id));
        for (const auto id : update.update)
            out.push_back(segment_message(*registration, id));
    }
    for (auto& to : ports_)
        for (const auto& about : ports_)
            if (to && about && to->client != about->client)
                tell_shared(*to, *about, out);
    return out;
}

std::vector<std::string> Broker::holders(std::uint32_t id) const {
    std::vector<std::string> names;
    if (!shared_)
        return names;
    for (const auto& registration : ports_)
        if (registration && (shared_->mask_of(registration->name) >> id & 1))
            names.push_back(registration->name);
    return names;
}

} // namespace partlink::fabric
