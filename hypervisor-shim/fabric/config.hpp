// partlinkd's configuration file: which partitions share a network, and which
// one may send capacity directives (WLM).
//
//   {"networks": {"blue": ["vm1", "vm2"], "red": ["vm3"]}, "wlm": "vm1"}
//
// Networks get ids 1.. in the sorted order of their names.  With networks
// given, a partition in none of them may not join the fabric.  Without a
// config (or without "networks"), every partition is in network 1.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace partlink::fabric {

class Config {
public:
    // Every partition in network 1, no WLM.
    Config() = default;

    // Throws Error naming `file` for unreadable files, bad JSON, unknown
    // keys, wrong types, a partition in two networks.
    static Config load(const std::filesystem::path& file);
    // The same from text; `origin` names it in errors.
    static Config parse(std::string_view text, const std::string& origin);

    // The network of a partition, nullopt if it is in none.
    std::optional<std::uint32_t> network_of(const std::string& name) const;
    // "blue", or "1" without configured networks.
    std::string network_name(std::uint32_t network) const;
    // PARTLINK_PORT_* flags for a partition.
    std::uint32_t flags_of(const std::string& name) const;

    bool has_networks() const { return has_networks_; }
    // The partitions of the configured networks, in name order; empty
    // without networks (then any partition may join).
    std::vector<std::string> partitions() const;
    const std::optional<std::string>& wlm() const { return wlm_; }

private:
    bool has_networks_ = false;
    std::map<std::string, std::uint32_t> network_ids_; // network name -> id
    std::map<std::string, std::uint32_t> members_;     // partition -> network id
    std::optional<std::string> wlm_;
};

} // namespace partlink::fabric
