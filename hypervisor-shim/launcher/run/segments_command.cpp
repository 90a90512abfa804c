#include "run/segments_command.hpp"

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli/text_table.hpp"
#include "error.hpp"
#include "run/partlinkd_control.hpp"
#include "run/state.hpp"
#include "text.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto kReloadTimeout = 10s;

nlohmann::json read_state(const RunDir& dir) {
    const fs::path file = dir.segments_state();
    std::ifstream in(file);
    if (!in)
        throw Error("no shared segments in " + dir.path().string() +
                    ": start partitions with `partlink up --segments FILE`");
    try {
        return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw Error(file.string() + " does not parse: " + e.what());
    }
}

// The state's segments without what partlinkd added (id, holders), as a
// table again.
segments::Table table_of(const nlohmann::json& state, const fs::path& origin) {
    nlohmann::json table = {{"segments", nlohmann::json::array()}};
    for (auto segment : state.at("segments")) {
        segment.erase("id");
        segment.erase("locked");
        segment.erase("held_by");
        table["segments"].push_back(std::move(segment));
    }
    return segments::Table::parse(table.dump(), origin.string(), std::nullopt);
}

// The partitions of the run, which a table may name.
segments::KnownPartitions run_partitions(const RunDir& dir) {
    const auto state = dir.load_state();
    if (!state)
        throw Error("no partitions are running in " + dir.path().string());
    std::set<std::string, std::less<>> names;
    for (const auto& partition : state->partitions)
        names.insert(partition.name);
    return names;
}

} // namespace

segments::Table loaded_segments(const RunDir& dir) {
    return table_of(read_state(dir), dir.segments_state());
}

int run_segments_list(const RunDir& dir, bool json) {
    const auto state = read_state(dir);
    if (json) {
        std::cout << state.dump(2) << '\n';
        return kExitOk;
    }
    Table table{{"SEGMENT", "ID", "SIZE", "PINNED", "MAY MAP", "HELD BY"}};
    for (const auto& segment : state.at("segments")) {
        std::vector<std::string> access;
        for (const auto& [partition, rights] : segment.at("partitions").items())
            access.push_back(partition + " " + rights.at("access").get<std::string>() + " " +
                             std::to_string(rights.at("uid").get<std::uint32_t>()) + ":" +
                             std::to_string(rights.at("gid").get<std::uint32_t>()) + " " +
                             rights.at("mode").get<std::string>());
        table.push_back({segment.at("name").get<std::string>(),
                         std::to_string(segment.at("id").get<std::uint32_t>()),
                         segments::format_size(segment.at("size").get<std::uint64_t>()),
                         segment.at("pinned").get<bool>() ? "yes" : "no", join(access, "-"),
                         join(segment.at("held_by").get<std::vector<std::string>>(), "-")});
    }
    std::cout << render_table(table);
    if (state.at("segments").empty())
        std::cout << "(no segments in " << state.at("table").get<std::string>() << ")\n";
    if (!state.at("error").is_null())
        std::cout << "the last `segments load` was refused: "
                  << state.at("error").get<std::string>() << '\n';
    return kExitOk;
}

int run_segments_load(const RunDir& dir, const fs::path& file, bool dry_run) {
    const auto state = read_state(dir);
    const auto current = table_of(state, dir.segments_state());
    // partlinkd checks it again; refusing here says why before anything moves.
    const auto next = segments::Table::load(file, run_partitions(dir));
    const auto changes = segments::diff(current, next);
    for (const auto& change : changes)
        std::cout << change.description << '\n';
    if (changes.empty()) {
        std::cout << "no changes: " << file.string() << " is the table loaded now\n";
        return kExitOk;
    }
    if (dry_run) {
        std::cout << "--dry-run: nothing applied\n";
        return kExitOk;
    }
    const auto run = dir.load_state();
    if (!run || !run->partlinkd || !run->partlinkd->pid ||
        !is_our_partlinkd(*run->partlinkd->pid, dir.path()))
        throw Error("partlinkd of " + dir.path().string() + " is not running: nothing applied");

    std::ifstream in(file, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file_atomic(dir.segments_table(), text);
    const auto reloads = state.value("reloads", std::uint64_t{0});
    const pid_t daemon = *run->partlinkd->pid;
    if (::kill(daemon, SIGHUP) < 0)
        throw_errno("cannot signal partlinkd (pid " + std::to_string(daemon) + ")");
    const auto deadline = std::chrono::steady_clock::now() + kReloadTimeout;
    for (;;) {
        const auto now = read_state(dir);
        if (now.value("reloads", std::uint64_t{0}) > reloads) {
            if (!now.at("error").is_null())
                throw Error("partlinkd refused the table: " + now.at("error").get<std::string>());
            std::cout << "applied " << changes.size() << " change"
                      << (changes.size() == 1 ? "" : "s") << "; see `partlink segments`\n";
            return kExitOk;
        }
        if (std::chrono::steady_clock::now() > deadline)
            throw Error("partlinkd did not answer the reload within 10 s: see " +
                        dir.partlinkd_log().string());
        std::this_thread::sleep_for(50ms);
    }
}

} // namespace partlink
