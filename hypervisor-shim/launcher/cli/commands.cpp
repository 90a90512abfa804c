#include "cli/commands.hpp"

#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "capacity/audit_log.hpp"
#include "cli/output.hpp"
#include "devloop/console.hpp"
#include "devloop/driver_reload.hpp"
#include "devloop/gdb.hpp"
#include "devloop/one_shot.hpp"
#include "error.hpp"
#include "host/process.hpp"
#include "host/ssh.hpp"
#include "run/boot.hpp"
#include "run/run_dir.hpp"
#include "run/segments_command.hpp"
#include "run/start_stop.hpp"
#include "run/status.hpp"
#include "run/teardown.hpp"
#include "run/up.hpp"
#include "run/wlm_logs.hpp"
#include "text.hpp"

namespace partlink::cli {

namespace fs = std::filesystem;

namespace {

// Progress on `progress` (stdout, or stderr where stdout is a command's),
// warnings on stderr.
Output stream_output(std::ostream& progress) {
    return Output([&progress](Output::Kind kind, std::string_view text) {
        switch (kind) {
        case Output::Kind::Info:
            progress << "partlink: " << text << std::endl;
            break;
        case Output::Kind::Item:
            progress << "  " << text << std::endl;
            break;
        case Output::Kind::Warning:
            progress.flush();
            std::cerr << "partlink: warning: " << text << std::endl;
            break;
        }
    });
}

Output terminal_output() {
    return stream_output(std::cout);
}

// The state of a run that `status` and `ssh` read without changing it.  They
// do not wait for the lock: the state file is replaced atomically, so what
// they read is always a whole document.
struct Observed {
    std::optional<RunDir> dir;
    std::optional<RunState> state;
    bool busy = false;
};

Observed observe(const fs::path& run_dir) {
    Observed o;
    o.dir = RunDir::open_existing(run_dir);
    if (!o.dir)
        return o;
    auto lock = RunDirLock::try_acquire(*o.dir, RunDirLock::Mode::Shared);
    o.busy = !lock;
    try {
        o.state = o.dir->load_state();
    } catch (const StateCorrupt& e) {
        throw Error(o.dir->state_file().string() + " is corrupt (" + e.reason() +
                    "); run `partlink down` to clean up");
    }
    return o;
}

Observed observe_up(const fs::path& run_dir) {
    Observed o = observe(run_dir);
    if (!o.state || o.state->partitions.empty())
        throw Error("nothing is up in " + run_dir.string() + "; run `partlink up` first");
    return o;
}

const PartitionRecord& named_partition(const Observed& o, const std::string& vm) {
    const PartitionRecord* p = o.state->find(vm);
    if (!p)
        throw UsageError("no partition named '" + vm + "' (partitions: " + join(o.state->names()) +
                         ")");
    return *p;
}

// A partition that is up, or an Error that says how to get it up.
const PartitionRecord* running_partition(const Observed& observed, const std::string& vm,
                                         const fs::path& run_dir) {
    if (!observed.state || observed.state->partitions.empty())
        throw Error("nothing is up in " + run_dir.string() + "; run `partlink up` first");
    const PartitionRecord* p = &named_partition(observed, vm);
    std::string state = live_state(*p, observed.dir->path(), observed.busy);
    if (state == "stopped")
        throw Error(vm + " is not running (stopped by `partlink stop`); `partlink start " + vm +
                    "` boots it again");
    if (state == "dead")
        throw Error(vm + " is not running (its QEMU is gone; see " + p->log.string() + " and " +
                    p->console.string() + "); `partlink start " + vm + "` boots it again");
    if (state == "starting")
        throw Error(vm +
                    " is still starting; wait for `partlink up` or `partlink start` to finish");
    return p;
}

SshTarget ssh_target(const PartitionRecord& p, const Layout& layout) {
    return {layout.ssh_identity(), layout.ssh_known_hosts(),
            static_cast<std::uint16_t>(p.ssh_port)};
}

// What `up` and `run` boot from, each missing one named with its make target.
void require_files_for_up(const UpOptions& options, const Layout& layout) {
    layout.require_qemu();
    layout.require_images();
    if (options.net == NetMode::Partlink)
        layout.require_partlinkd();
}

// `start` and `stop` need a run that is up: its directory must exist.
RunDir existing_run(const fs::path& run_dir) {
    auto dir = RunDir::open_existing(run_dir);
    if (!dir)
        throw Error("nothing is up in " + run_dir.string() + "; run `partlink up` first");
    return std::move(*dir);
}

// The run whose WLM logs `wlm log` and `wlm chart` read: its directory
// must exist, with a state or a log (a run taken `down` keeps its logs).
RunDir wlm_run(const fs::path& run_dir) {
    RunDir dir = existing_run(run_dir);
    std::error_code ec;
    for (const fs::path& file : {dir.state_file(), dir.wlm_audit_log(), dir.wlm_chart_log()})
        if (fs::exists(file, ec))
            return dir;
    throw Error("nothing is up in " + run_dir.string() + "; run `partlink up` first");
}

} // namespace

int run_up(const UpOptions& options, const Layout& layout, const fs::path& run_dir) {
    require_files_for_up(options, layout);
    RunDir dir = RunDir::open(run_dir);
    if (options.dry_run)
        print_qemu_command_lines(options, layout, dir, terminal_output());
    else
        bring_up(options, layout, dir, terminal_output());
    return kExitOk;
}

int run_start(const StartOptions& options, const Layout& layout, const fs::path& run_dir) {
    start_partition(options, layout, existing_run(run_dir), terminal_output());
    return kExitOk;
}

int run_stop(const std::string& vm, const fs::path& run_dir) {
    stop_partition(vm, existing_run(run_dir), terminal_output());
    return kExitOk;
}

int run_down(const fs::path& run_dir) {
    auto dir = RunDir::open_existing(run_dir);
    if (!dir) {
        std::cout << "partlink: nothing to stop (" << run_dir.string() << " does not exist)\n";
        return kExitOk;
    }
    RunDirLock lock = RunDirLock::acquire_or_fail(*dir, RunDirLock::Mode::Exclusive);
    Output out = terminal_output();
    TeardownReport r = tear_down(*dir, out);
    if (!r.did_anything() && r.errors.empty()) {
        out.info("nothing to stop in " + dir->path().string());
        return kExitOk;
    }
    if (!r.errors.empty())
        throw Error("down did not finish: " + join(r.errors));
    std::vector<std::string> did;
    if (r.qemus_stopped)
        did.push_back("stopped " + std::to_string(r.qemus_stopped) + " QEMU" +
                      (r.qemus_stopped == 1 ? "" : "s"));
    if (r.daemons_stopped)
        did.push_back("stopped partlinkd");
    if (r.interfaces_removed)
        did.push_back("removed " + std::to_string(r.interfaces_removed) + " interface" +
                      (r.interfaces_removed == 1 ? "" : "s"));
    if (r.state_removed)
        did.push_back("removed the state");
    out.info("down: " + join(did) + "; logs and consoles kept in " + dir->path().string());
    return kExitOk;
}

int run_status(const fs::path& run_dir, bool json) {
    Observed o = observe(run_dir);
    fs::path shown = o.dir ? o.dir->path() : run_dir;
    StatusReport report = collect_status(shown, o.state, o.busy);
    if (json)
        std::cout << render_status_json(report).dump(2) << '\n';
    else
        std::cout << render_status_table(report);
    return kExitOk;
}

int run_segments(const fs::path& run_dir, bool json) {
    return run_segments_list(existing_run(run_dir), json);
}

int run_segments_load(const fs::path& run_dir, const fs::path& file, bool dry_run) {
    return partlink::run_segments_load(existing_run(run_dir), file, dry_run);
}

int run_wlm_log(const fs::path& run_dir, bool json) {
    const RunDir dir = wlm_run(run_dir);
    const fs::path log = dir.wlm_audit_log();
    std::error_code ec;
    if (!fs::exists(log, ec)) {
        if (!json)
            std::cout << "partlink: no directives yet (" << log.string() << " does not exist)\n";
        return kExitOk;
    }
    capacity::AuditLogContents contents = capacity::read_audit_log(log);
    if (json)
        std::cout << render_audit_json_lines(contents.records);
    else if (contents.records.empty())
        std::cout << "partlink: no directives yet (" << log.string() << " is empty)\n";
    else
        std::cout << render_audit_table(contents.records);
    std::cout.flush();
    for (const auto& problem : contents.problems)
        std::cerr << "partlink: warning: " << log.string() << ": " << problem << '\n';
    return kExitOk;
}

int run_wlm_chart(const std::optional<std::string>& out, const Layout& layout,
                  const fs::path& run_dir) {
    const RunDir dir = wlm_run(run_dir);
    const fs::path chart = dir.wlm_chart_log();
    std::error_code ec;
    if (!fs::exists(chart, ec))
        throw Error("no control chart data yet: " + chart.string() +
                    " does not exist (partlinkd writes it as the WLM manager reports; is the "
                    "run up with --net partlink and the manager running?)");
    layout.require_wlm_chart();
    const fs::path png = out ? fs::absolute(*out) : dir.wlm_chart_png();
    std::vector<std::string> argv = {
        layout.python.string(), layout.wlm_chart_script.string(), "--chart-log", chart.string(),
        "--audit-log",          dir.wlm_audit_log().string(),     "--out",       png.string()};
    std::cout.flush();
    Process script = Process::spawn(argv);
    ExitStatus status = script.wait();
    if (status.code == 0)
        return kExitOk;
    throw Error("could not draw the chart: " + layout.wlm_chart_script.filename().string() + " " +
                status.describe());
}

int run_ssh(const std::string& vm, const std::vector<std::string>& command, const Layout& layout,
            const fs::path& run_dir) {
    Observed o = observe(run_dir);
    const PartitionRecord* p = running_partition(o, vm, run_dir);
    layout.require_ssh_files();
    SshTarget target = ssh_target(*p, layout);
    bool tty = command.empty() && ::isatty(STDIN_FILENO);
    std::cout.flush();
    exec_ssh(build_ssh_argv(target, command, tty));
}

int run_one_shot_command(const UpOptions& options, const std::vector<std::string>& on,
                         const std::vector<std::string>& command, const Layout& layout,
                         const std::optional<std::string>& run_dir) {
    require_files_for_up(options, layout);
    layout.require_ssh_files();
    std::optional<fs::path> dir;
    if (run_dir)
        dir = choose_run_dir(run_dir, layout);
    return run_one_shot(options, on, command, layout, dir, stream_output(std::cerr));
}

int run_driver_reload(const std::vector<std::string>& vms,
                      const std::optional<std::filesystem::path>& module, const Layout& layout,
                      const fs::path& run_dir) {
    Observed o = observe_up(run_dir);
    layout.require_ssh_files();
    std::vector<std::string> targets = vms;
    if (targets.empty()) {
        for (const auto& p : o.state->partitions)
            if (live_state(p, o.dir->path(), o.busy) == "running")
                targets.push_back(p.name);
        if (targets.empty())
            throw Error("no partition is running in " + run_dir.string());
    }
    for (const auto& vm : targets)
        running_partition(o, vm, run_dir);
    const fs::path file =
        module.value_or(layout.driver_dir() / o.state->boot.release / "partlink.ko");
    Output out = terminal_output();
    auto results = reload_driver(*o.state, layout, targets, file, out);
    int failed = 0;
    for (const auto& r : results) {
        const std::string took = format_seconds(r.took);
        if (r.ok) {
            out.item(r.vm + ": partlink.ko " + r.old_srcversion + " -> " + r.new_srcversion +
                     " in " + took + " (" + r.detail + ")");
        } else {
            ++failed;
            out.item(r.vm + ": FAILED after " + took + ": " + r.detail);
        }
    }
    if (failed)
        throw Error(std::to_string(failed) + " of " + std::to_string(results.size()) +
                    " partitions did not take the new module (logs: RUN/vmN.reload.log)");
    return kExitOk;
}

int run_console(const std::string& vm, const fs::path& run_dir) {
    Observed o = observe(run_dir);
    const PartitionRecord* p = running_partition(o, vm, run_dir);
    return attach_console(o.dir->console_socket(p->index), vm);
}

int run_logs(const std::string& vm, const fs::path& run_dir) {
    Observed o = observe_up(run_dir);
    const PartitionRecord& p = named_partition(o, vm);
    for (const fs::path& file : {p.console, p.log}) {
        std::cout << "==> " << file.string() << " <==\n";
        auto text = read_text_file(file);
        std::cout << (text ? *text : "(missing)\n");
        if (text && !text->empty() && text->back() != '\n')
            std::cout << '\n';
    }
    return kExitOk;
}

int run_gdb(const std::string& vm, const std::vector<std::string>& gdb_args, const Layout& layout,
            const fs::path& run_dir) {
    Observed o = observe(run_dir);
    const PartitionRecord* p = running_partition(o, vm, run_dir);
    layout.require_ssh_files();
    std::cout.flush();
    exec_gdb(*o.state, *p, layout, ssh_target(*p, layout), gdb_args);
}

} // namespace partlink::cli
