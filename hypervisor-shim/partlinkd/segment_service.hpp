// The shared segments partlinkd serves: the operator's table file
// (--segments), the memfds behind it (segments::Store), reloading on SIGHUP,
// and the state file (--segments-state) from which `partlink segments`
// lists them with the partitions that hold each now.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "broker.hpp"
#include "store.hpp"
#include "table.hpp"

namespace partlink::daemon {

class SegmentService {
public:
    // Without a table file: no segments, and reload() refuses.  Loads the
    // table (throws Error naming the file) against the fabric's partitions.
    SegmentService(std::optional<std::filesystem::path> table,
                   std::optional<std::filesystem::path> state, const fabric::Config& config);

    const segments::Store& store() const { return store_; }
    bool enabled() const { return table_.has_value(); }

    // Reads the table file again and applies it.  Throws Error saying why
    // (nothing changed then).  `changes` gets the operator's lines.
    segments::Applied reload(std::vector<std::string>& changes);

    // Writes the state file (atomically): the table as loaded, each
    // segment's id and holders, and `error` if the last reload failed.
    void write_state(const fabric::Broker& broker, const std::string& error = "");

private:
    segments::Table load() const;

    std::optional<std::filesystem::path> table_;
    std::optional<std::filesystem::path> state_;
    segments::KnownPartitions known_;
    segments::Store store_;
    std::uint64_t generation_ = 0; // tables applied, the first one included
    std::uint64_t reloads_ = 0;    // reloads tried, failed ones included
};

} // namespace partlink::daemon
