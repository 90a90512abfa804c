#include "config.hpp"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "partlink/partlink_abi.h"

using nlohmann::json;

namespace partlink::fabric {

namespace {

std::string type_of(const json& value) {
    return value.type_name();
}

void check_partition_name(const std::string& name, const std::string& where) {
    if (name.empty() || name.size() >= PARTLINK_NAME_LEN)
        throw Error(where + ": partition name '" + name + "' must be 1.." +
                    std::to_string(PARTLINK_NAME_LEN - 1) + " characters");
}

} // namespace

Config Config::load(const std::filesystem::path& file) {
    std::ifstream in(file);
    if (!in)
        throw_errno("cannot read config file " + file.string());
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw_errno("cannot read config file " + file.string());
    return parse(text.str(), file.string());
}

Config Config::parse(std::string_view text, const std::string& origin) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        throw Error(origin + ": not valid JSON: " + e.what());
    }
    if (!doc.is_object())
        throw Error(origin + ": expected a JSON object, got " + type_of(doc));

    Config config;
    for (const auto& [key, value] : doc.items()) {
        if (key == "networks") {
            if (!value.is_object())
                throw Error(origin +
                            ": \"networks\" must be an object of network name -> "
                            "list of partitions, got " +
                            type_of(value));
            config.has_networks_ = true;
            std::uint32_t id = 1;
            // nlohmann::json objects iterate in sorted key order.
            for (const auto& [network, members] : value.items()) {
                std::string where = origin + ": network \"" + network + "\"";
                if (network.empty())
                    throw Error(origin + ": a network name is empty");
                if (!members.is_array())
                    throw Error(where + " must be a list of partition names, got " +
                                type_of(members));
                config.network_ids_[network] = id;
                for (const auto& member : members) {
                    if (!member.is_string())
                        throw Error(where + ": partition names must be strings, got " +
                                    type_of(member));
                    auto name = member.get<std::string>();
                    check_partition_name(name, where);
                    auto [it, added] = config.members_.emplace(name, id);
                    if (!added) {
                        std::string other = config.network_name(it->second);
                        throw Error(origin + ": partition " + name + " is in network \"" + other +
                                    "\"" +
                                    (other == network ? " twice" : " and in \"" + network + "\"") +
                                    "; a partition belongs to one network");
                    }
                }
                ++id;
            }
        } else if (key == "wlm") {
            if (!value.is_string())
                throw Error(origin + ": \"wlm\" must be a partition name, got " + type_of(value));
            auto name = value.get<std::string>();
            check_partition_name(name, origin + ": \"wlm\"");
            config.wlm_ = name;
        } else {
            throw Error(origin + ": unknown key \"" + key + "\" (known: networks, wlm)");
        }
    }
    if (config.wlm_ && config.has_networks_ && !config.members_.contains(*config.wlm_))
        throw Error(origin + ": the WLM partition " + *config.wlm_ + " is in no network");
    return config;
}

std::optional<std::uint32_t> Config::network_of(const std::string& name) const {
    if (!has_networks_)
        return 1;
    auto it = members_.find(name);
    if (it == members_.end())
        return std::nullopt;
    return it->second;
}

std::string Config::network_name(std::uint32_t network) const {
    for (const auto& [name, id] : network_ids_)
        if (id == network)
            return name;
    return std::to_string(network);
}

std::uint32_t Config::flags_of(const std::string& name) const {
    return wlm_ && *wlm_ == name ? PARTLINK_PORT_WLM : 0;
}

std::vector<std::string> Config::partitions() const {
    std::vector<std::string> names;
    for (const auto& [name, network] : members_)
        names.push_back(name);
    return names;
}

} // namespace partlink::fabric
