// partlink: the command-line front end.  Parses, dispatches, and turns
// errors into one clear message and an exit status.
#include <iostream>
#include <string>
#include <vector>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"
#include "error.hpp"
#include "run/layout.hpp"

namespace {

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};

int dispatch(const partlink::cli::CommandLine& cl) {
    using namespace partlink;
    using namespace partlink::cli;
    if (auto* help = std::get_if<HelpCommand>(&cl.command)) {
        std::cout << help->text;
        return kExitOk;
    }
    const Layout layout = discover_layout();
    const auto run_dir = choose_run_dir(cl.run_dir, layout);
    return std::visit(
        Overloaded{
            [&](const UpCommand& c) { return run_up(c.options, layout, run_dir); },
            [&](const StartCommand& c) { return run_start(c.options, layout, run_dir); },
            [&](const StopCommand& c) { return run_stop(c.vm, run_dir); },
            [&](const DownCommand&) { return run_down(run_dir); },
            [&](const StatusCommand& c) { return run_status(run_dir, c.json); },
            [&](const SshCommand& c) { return run_ssh(c.vm, c.command, layout, run_dir); },
            [&](const WlmLogCommand& c) { return run_wlm_log(run_dir, c.json); },
            [&](const WlmChartCommand& c) { return run_wlm_chart(c.out, layout, run_dir); },
            [&](const SegmentsCommand& c) { return run_segments(run_dir, c.json); },
            [&](const SegmentsLoadCommand& c) {
                return run_segments_load(run_dir, c.file, c.dry_run);
            },
            [&](const RunCommand& c) {
                return run_one_shot_command(c.options, c.on, c.command, layout, cl.run_dir);
            },
            [&](const DriverReloadCommand& c) {
                return run_driver_reload(c.vms, c.module, layout, run_dir);
            },
            [&](const ConsoleCommand& c) { return run_console(c.vm, run_dir); },
            [&](const LogsCommand& c) { return run_logs(c.vm, run_dir); },
            [&](const GdbCommand& c) { return run_gdb(c.vm, c.gdb_args, layout, run_dir); },
            [&](const HelpCommand&) { return kExitOk; },
        },
        cl.command);
}

} // namespace

int main(int argc, char** argv) {
    try {
        std::vector<std::string> args(argv + 1, argv + argc);
        return dispatch(partlink::cli::parse_command_line(args, partlink::host_cpu_count()));
    } catch (const partlink::Error& e) {
        std::cout.flush();
        std::cerr << "partlink: " << e.what() << '\n';
        return e.exit_code();
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << "partlink: internal error: " << e.what() << '\n';
        return partlink::kExitRuntime;
    }
}
