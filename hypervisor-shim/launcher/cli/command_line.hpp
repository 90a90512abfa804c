// The partlink command line: CLI11 wiring that turns argv into one typed,
// validated command.  Every mistake becomes a UsageError with a one-line
// message; nothing here touches the host.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "run/options.hpp"

namespace partlink::cli {

struct UpCommand {
    UpOptions options;
};
struct StartCommand {
    StartOptions options;
};
struct StopCommand {
    std::string vm;
};
struct DownCommand {};
struct StatusCommand {
    bool json = false;
};
struct SshCommand {
    std::string vm;
    std::vector<std::string> command; // empty: interactive login
};
// `wlm log [--json]`: the capacity audit log.
struct WlmLogCommand {
    bool json = false;
};
// `wlm chart [--out FILE.png]`: the control chart of every partition.
struct WlmChartCommand {
    std::optional<std::string> out; // nothing: RUN/wlm-chart.png
};
// --help and --version: print `text` to stdout and exit 0.
struct SegmentsCommand {
    bool json = false;
};
struct SegmentsLoadCommand {
    std::filesystem::path file;
    bool dry_run = false;
};
// `run [up's options] [--on vmK | --each] -- CMD...`: boot, run CMD, shut
// down, exit with CMD's status.
struct RunCommand {
    UpOptions options;
    std::vector<std::string> on; // partitions to run CMD in: vm1, vmK, or all
    std::vector<std::string> command;
};
// `driver reload [vmN...] [--module FILE]`
struct DriverReloadCommand {
    std::vector<std::string> vms; // empty: every running partition
    std::optional<std::filesystem::path> module;
};
struct ConsoleCommand {
    std::string vm;
};
struct LogsCommand {
    std::string vm;
};
struct GdbCommand {
    std::string vm;
    std::vector<std::string> gdb_args; // after `--`
};
struct HelpCommand {
    std::string text;
};

using Command =
    std::variant<UpCommand, StartCommand, StopCommand, DownCommand, StatusCommand, SshCommand,
                 WlmLogCommand, WlmChartCommand, SegmentsCommand, SegmentsLoadCommand, RunCommand,
                 DriverReloadCommand, ConsoleCommand, LogsCommand, GdbCommand, HelpCommand>;

struct CommandLine {
    std::optional<std::string> run_dir; // --run-dir
    Command command;
};

// `args` excludes argv[0]; `host_cpus` bounds --cpus.
CommandLine parse_command_line(const std::vector<std::string>& args, int host_cpus);

} // namespace partlink::cli
