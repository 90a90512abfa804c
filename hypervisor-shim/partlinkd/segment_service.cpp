#include "segment_service.hpp"

#include <fstream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "error.hpp"

namespace partlink::daemon {

namespace {

// Segments may take half of the memory the host has free, on top of what
// they hold already.
std::uint64_t memory_limit(const segments::Store& store) {
    return segments::mem_available() / 2 + store.table().total_size();
}

} // namespace

SegmentService::SegmentService(std::optional<std::filesystem::path> table,
                               std::optional<std::filesystem::path> state,
                               const fabric::Config& config)
    : table_(std::move(table))
    , state_(std::move(state)) {
    if (config.has_networks()) {
        std::set<std::string, std::less<>> names;
        for (auto& name : config.partitions())
            names.insert(std::move(name));
        known_ = std::move(names);
    }
    if (table_) {
        store_.apply(load(), memory_limit(store_));
        ++generation_;
    }
}

segments::Table SegmentService::load() const {
    return segments::Table::load(*table_, known_);
}

segments::Applied SegmentService::reload(std::vector<std::string>& changes) {
    ++reloads_;
    if (!table_)
        throw Error("partlinkd runs without --segments: there is no table to reload");
    auto next = load();
    for (const auto& change : segments::diff(store_.table(), next))
        changes.push_back(change.description);
    auto applied = store_.apply(next, memory_limit(store_));
    ++generation_;
    return applied;
}

void SegmentService::write_state(const fabric::Broker& broker, const std::string& error) {
    if (!state_)
        return;
    nlohmann::json segments = nlohmann::json::array();
    for (const auto& stored : store_.segments()) {
        auto entry = segments::to_json(*stored.segment);
        entry["id"] = stored.id;
        entry["locked"] = stored.locked;
        entry["held_by"] = broker.holders(stored.id);
        segments.push_back(std::move(entry));
    }
    nlohmann::json state = {
        {"generation", generation_},
        {"reloads", reloads_},
        {"table", table_ ? table_->string() : ""},
        {"error", error.empty() ? nlohmann::json() : nlohmann::json(error)},
        {"segments", std::move(segments)},
    };
    const auto tmp = state_->string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << state.dump(2) << '\n';
        if (!out.flush())
            throw Error("cannot write " + tmp);
    }
    if (::rename(tmp.c_str(), state_->c_str()) < 0)
        throw_errno("cannot replace " + state_->string());
}

} // namespace partlink::daemon
