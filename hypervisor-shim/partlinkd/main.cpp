// partlinkd: the partlink fabric broker.  QEMU's partlink-pci devices connect
// to its unix socket, register their port with HELLO, and learn about the
// peers in their network; partlinkd owns the fabric segment they all map.
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "daemon.hpp"
#include "error.hpp"

namespace {

partlink::daemon::Options parse(int argc, char** argv, bool& help) {
    partlink::daemon::Options options;
    std::string config;
    CLI::App app{"partlinkd: the partlink fabric broker.  partlink-pci devices register on its "
                 "socket; it owns the fabric segment and tells each device about the peers in "
                 "its network.  Stops on SIGTERM or SIGINT, leaving the fabric as it is.",
                 "partlinkd"};
    app.add_option("--socket", options.socket, "unix socket the devices connect to")
        ->required()
        ->type_name("PATH");
    app.add_option("--segment", options.segment,
                   "fabric segment file, created if missing, reused if valid")
        ->required()
        ->type_name("PATH");
    app.add_option("--config", config,
                   "JSON: {\"networks\": {\"blue\": [\"vm1\", \"vm2\"]}, \"wlm\": \"vm1\"}")
        ->type_name("FILE");
    std::string capacity;
    app.add_option("--capacity", capacity,
                   "JSON: the run's capacity policy, cgroups and logs (written by `partlink up`); "
                   "without it, capacity directives are refused")
        ->type_name("FILE");
    std::string segments;
    app.add_option("--segments", segments,
                   "JSON: the shared segments' table (see docs/spec.md); re-read on SIGHUP")
        ->type_name("FILE");
    std::string segments_state;
    app.add_option("--segments-state", segments_state,
                   "where to write the segments' state for `partlink segments`")
        ->type_name("FILE");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        help = true;
        return options;
    } catch (const CLI::ParseError& e) {
        throw partlink::UsageError(std::string(e.what()) + " (see partlinkd --help)");
    }
    if (!config.empty())
        options.config = config;
    if (!capacity.empty())
        options.capacity = capacity;
    if (!segments.empty())
        options.segments = segments;
    if (!segments_state.empty())
        options.segments_state = segments_state;
    return options;
}

} // namespace

int main(int argc, char** argv) {
    try {
        bool help = false;
        auto options = parse(argc, argv, help);
        if (help)
            return partlink::kExitOk;
        // The config first: a mistake in it must not leave a segment behind.
        auto config = partlink::daemon::load_config(options);
        auto capacity = partlink::daemon::load_capacity(options, config);
        partlink::daemon::Daemon daemon(options, std::move(config), std::move(capacity));
        return daemon.run();
    } catch (const partlink::Error& e) {
        std::cerr << "partlinkd: " << e.what() << '\n';
        return e.exit_code();
    } catch (const std::exception& e) {
        std::cerr << "partlinkd: internal error: " << e.what() << '\n';
        return partlink::kExitRuntime;
    }
}
