#include "cli/command_line.hpp"

#include <algorithm>
#include <sstream>

#include <CLI/CLI.hpp>

#include "error.hpp"

#ifndef PARTLINK_VERSION
#define PARTLINK_VERSION "unknown"
#endif

namespace partlink::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDescription =
    "partlink boots a partitioned machine: several QEMU guests (partitions) joined by a data "
    "network, managed like Vagrant or Lima machines.";

constexpr const char* kCommands =
    "up, start, stop, ssh, status, wlm, segments, run, driver, console, logs, gdb, down";

constexpr const char* kFooter = R"(Examples:
  partlink up --vms 3                 boot vm1..vm3, each with 10.77.0.N/24 on pl0
  partlink ssh vm1 -- ping -c 1 10.77.0.2
  partlink status --json
  partlink wlm log                    the capacity directives partlinkd applied
  partlink segments                   the shared segments and who holds each
  partlink stop vm2                   stop one partition; the others keep running
  partlink start vm2                  boot it again, as `up` did
  partlink down
Developing the driver:
  partlink up --vms 3 --gdb --share .:src   (then edit guest-driver/kernel/*.c)
  make driver && partlink driver reload   the new partlink.ko in every partition
  partlink console vm2                detach with Ctrl-]
  partlink run --kernel ~/linux -- uname -r

Files: QEMU from BUILD/qemu (or $PARTLINK_QEMU), guest images from BUILD/images (or
$PARTLINK_IMAGES), where BUILD is the directory above the one holding this executable.
Exit status: 0 success, 1 failure, 2 bad command line.)";

struct Parsed {
    std::optional<std::string> run_dir;
    UpArgs up;
    std::optional<std::string> start_timeout;
    bool json = false;
    std::string vm;
    std::vector<std::string> words;
    std::optional<std::string> chart_out;
    std::string segments_file;
    bool dry_run = false;
    std::string on;
    bool each = false;
    std::optional<std::string> module;
};

// Adds an option whose value is validated later, as a string: CLI11's own
// messages for bad numbers are not the ones we want to show.
CLI::Option* add_string(CLI::App* app, const std::string& name, std::string& target,
                        const std::string& type, const std::string& help) {
    return app->add_option(name, target, help)->type_name(type);
}

std::string lowercase_first(std::string s) {
    if (!s.empty() && s[0] >= 'A' && s[0] <= 'Z')
        s[0] = static_cast<char>(s[0] - 'A' + 'a');
    return s;
}

// The first argument that is neither an option nor the value of --run-dir:
// where the command should have been.
std::optional<std::string> first_word(const std::vector<std::string>& args) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--run-dir") {
            ++i;
            continue;
        }
        if (!args[i].starts_with("-"))
            return args[i];
    }
    return std::nullopt;
}

// The first word after `wlm` that is not an option: where the wlm command
// should have been.
std::optional<std::string> word_after_wlm(const std::vector<std::string>& args) {
    auto it = std::find(args.begin(), args.end(), "wlm");
    if (it == args.end())
        return std::nullopt;
    for (++it; it != args.end(); ++it) {
        if (*it == "--run-dir" || *it == "--out") {
            ++it;
            if (it == args.end())
                break;
            continue;
        }
        if (!it->starts_with("-"))
            return *it;
    }
    return std::nullopt;
}

std::string usage_message(const CLI::ParseError& e, const CLI::App& app,
                          const std::vector<std::string>& args) {
    const std::string what = e.what();
    const std::string hint = " (see partlink --help)";
    auto selected = app.get_subcommands();
    const std::string sub = selected.empty() ? "" : selected.front()->get_name();

    if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
        if (sub.empty())
            if (auto word = first_word(args))
                return "unknown command '" + *word + "'; commands are " + kCommands + hint;
        if (sub == "ssh")
            return lowercase_first(what) +
                   "; put the remote command after `--`, e.g. partlink ssh vm1 -- uname -r";

        // "The following argument(s) was/were not expected: X Y"
        // CLI11 lists them in the reversed order in which it was fed them.
        std::vector<std::string> words;
        std::istringstream in(what.substr(what.find(": ") + 2));
        for (std::string w; in >> w;)
            words.insert(words.begin(), w);
        std::string extras;
        for (const auto& w : words)
            extras += (extras.empty() ? "" : " ") + w;
        std::string full = sub;
        if (!selected.empty())
            for (const auto* inner : selected.front()->get_subcommands())
                full += " " + inner->get_name();
        std::string help = sub.empty() ? "partlink --help" : "partlink " + full + " --help";
        if (extras.starts_with("-"))
            return "unknown option " + extras + (sub.empty() ? "" : " for `" + full + "`") +
                   " (see " + help + ")";
        if (sub == "start" || sub == "stop")
            return "`" + sub + "` takes one partition, e.g. partlink " + sub + " vm2 (got also '" +
                   extras + "'; see " + help + ")";
        return "`" + full + "` takes no arguments (got '" + extras + "'; see " + help + ")";
    }
    if (dynamic_cast<const CLI::RequiredError*>(&e)) {
        if (sub.empty()) {
            if (auto word = first_word(args))
                return "unknown command '" + *word + "'; commands are " + kCommands + hint;
            return std::string("a command is required: ") + kCommands + hint;
        }
        if (sub == "wlm") {
            if (auto word = word_after_wlm(args))
                return "unknown wlm command '" + *word + "'; wlm commands are log, chart" + hint;
            return "wlm needs a command: log or chart, e.g. partlink wlm log" + hint;
        }
        if (sub == "driver")
            return "driver needs a command: reload, e.g. partlink driver reload" + hint;
        if (sub == "ssh" || sub == "console" || sub == "logs" || sub == "gdb")
            return sub + " needs a partition name, e.g. partlink " + sub + " vm1";
        if (sub == "start" || sub == "stop")
            return sub + " needs a partition name, e.g. partlink " + sub + " vm2";
    }
    if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
        // "--vms: 1 required TEXT missing"
        auto colon = what.find(':');
        if (colon != std::string::npos && what.find("missing") != std::string::npos)
            return what.substr(0, colon) + " needs a value" + hint;
    }
    return lowercase_first(what) + hint;
}

// up's options, which `run` takes too.
void add_up_options(CLI::App* app, UpArgs& up, int host_cpus, int default_vms) {
    add_string(app, "--vms", up.vms, "N",
               "Number of partitions, 1..16 (default " + std::to_string(default_vms) + ")");
    add_string(app, "--mem", up.mem, "MiB", "Guest RAM per partition, 128..16384 (default 512)");
    add_string(app, "--cpus", up.cpus, "N",
               "vCPUs per partition, 1.." + std::to_string(host_cpus) + " (default 1)");
    add_string(app, "--accel", up.accel, "auto|kvm|tcg",
               "auto: KVM if a probe guest boots with it, else TCG (default auto)");
    add_string(app, "--net", up.net, "partlink|virtio-tap|virtio-socket",
               "Data network: the partlink one-copy adapter (pl0, joined by partlinkd), "
               "virtio-net on a host bridge, or virtio-net over a socket (2 VMs only); default "
               "partlink");
    app->add_option("--fabric-config", up.fabric_config,
                    "--net partlink: partlinkd's configuration (networks, WLM partition) instead "
                    "of one network of all partitions with vm1 as WLM")
        ->type_name("FILE");
    app->add_option("--ssh-port", up.ssh_port,
                    "vmN's ssh on 127.0.0.1:BASE+N-1 (default: free ports)")
        ->type_name("BASE");
    add_string(app, "--timeout", up.timeout, "SECONDS",
               "Fail if a guest does not answer ssh within this time (default 180)");
    app->add_flag("--no-cgroups", up.no_cgroups,
                  "Do not place each partition's QEMU in its own CPU cgroup (default: an equal "
                  "share of the host's CPUs each, cgroup v2 or v1; `up` fails if it cannot)");
    app->add_option("--policy", up.policy,
                    "Capacity policy: each partition's CPU entitlement, min, max and weight, and "
                    "the one partition that may send directives (default: an equal share each, "
                    "min 0.1, max every CPU, vm1)")
        ->type_name("FILE");
    app->add_option("--segments", up.segments,
                    "--net partlink: the shared segments' table (segments.json: name, size, "
                    "pinned, and per partition uid, gid, mode, rw or ro; docs/spec.md)")
        ->type_name("FILE");
    app->add_option("--kernel", up.kernel,
                    "Boot this kernel: a bzImage, or a kernel build tree (its "
                    "arch/x86/boot/bzImage and modules); partlink.ko is built against it")
        ->type_name("PATH");
    app->add_option("--append", up.append, "Add these arguments to the kernel command line")
        ->type_name("\"ARGS\"");
    app->add_option("--initrd", up.initrd,
                    "Boot this initramfs instead of the image's (it must bring up the guest "
                    "like images/init does)")
        ->type_name("FILE");
    app->add_option("--share", up.shares,
                    "Mount a host folder at /mnt/TAG in every partition (9p; read-only unless "
                    ":rw; TAG defaults to the folder's name); repeatable")
        ->type_name("DIR[:TAG][:rw]")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    app->add_flag("--gdb", up.gdb,
                  "Give each partition a gdbstub on 127.0.0.1 (`status` shows the port; "
                  "`partlink gdb vmN` attaches)");
    app->add_option("--qemu-arg", up.qemu_args,
                    "Add options to QEMU's command line, split at spaces; vmN:ARGS for one "
                    "partition only; repeatable")
        ->type_name("[vmN:]ARGS")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

} // namespace

CommandLine parse_command_line(const std::vector<std::string>& raw_args, int host_cpus) {
    // Everything after the first `--` is the remote command of `ssh`; CLI11
    // must not see it, or it would parse the remote command's options.
    std::vector<std::string> args = raw_args;
    std::optional<std::vector<std::string>> after_dashes;
    if (auto it = std::find(args.begin(), args.end(), "--"); it != args.end()) {
        after_dashes.emplace(it + 1, args.end());
        args.erase(it, args.end());
    }

    // A value of these may start with '-' ("-d guest_errors"), which CLI11
    // would take for an option: glue it to its option.
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        if (args[i] == "--qemu-arg" || args[i] == "--append") {
            args[i] += "=" + args[i + 1];
            args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        }
    }

    Parsed p;
    CLI::App app(kDescription, "partlink");
    app.footer(kFooter);
    app.set_version_flag("--version", "partlink " PARTLINK_VERSION);
    app.require_subcommand(1);
    // `--vms 3 --vms 2` means 2, as in most tools; inherited by the subcommands.
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    // Global options may also follow the command: `partlink up --run-dir X`.
    app.fallthrough();
    app.add_option("--run-dir", p.run_dir,
                   "Run directory: state, consoles, logs, sockets (default: $PARTLINK_RUN_DIR, "
                   "else BUILD/run)")
        ->type_name("DIR");

    CLI::App* up = app.add_subcommand("up", "Boot the partitions and wait until each answers ssh");
    up->footer(R"(Partition N is vmN: 10.77.0.N/24 on its data NIC, ssh forwarded from 127.0.0.1.
Examples:
  partlink up --vms 3
  partlink up --net virtio-tap --accel tcg --ssh-port 10022
  partlink up --vms 4 --fabric-config nets.json
  partlink up --vms 3 --policy policy.json
A --fabric-config file, as partlinkd reads it:
  {"networks": {"a": ["vm1", "vm2"], "b": ["vm3", "vm4"]}, "wlm": "vm1"}
A --policy file (CPU values in CPUs; min, max, weight, memory_mib optional; it must
name exactly vm1..vmN, and a --fabric-config's "wlm" must be its privileged partition):
  {"privileged": "vm1",
   "partitions": [{"name": "vm1", "entitlement": 0.5, "min": 0.2, "max": 1, "weight": 100},
                  {"name": "vm2", "entitlement": 1, "min": 0.1, "max": 1.5,
                   "memory_mib": {"min": 256, "max": 1024}}]})");
    add_up_options(up, p.up, host_cpus, 2);
    up->add_flag("--dry-run", p.up.dry_run,
                 "Print each partition's QEMU command line; start nothing");

    CLI::App* start = app.add_subcommand(
        "start",
        "Boot one partition again (after `stop` or a crash) and wait until it answers ssh");
    start->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    start
        ->add_option("--timeout", p.start_timeout,
                     "Fail if it does not answer ssh within this time (default: the --timeout "
                     "of `up`)")
        ->type_name("SECONDS");
    start->footer(R"(It gets the QEMU command line `up` gave it: the same MACs, fabric port and
data network (partlinkd, or its tap), and its ssh port if that is still free.
Examples:
  partlink start vm2
  partlink start vm3 --timeout 60)");

    CLI::App* stop = app.add_subcommand(
        "stop", "Stop one partition (QMP quit, then SIGTERM, then SIGKILL); the rest keep running");
    stop->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    stop->footer(R"(Its peers see it go; `partlink start VM` boots it again.
Example:
  partlink stop vm2)");

    CLI::App* ssh = app.add_subcommand(
        "ssh", "Run a command in a partition, or log in (OpenSSH; its exit status is returned)");
    ssh->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    ssh->add_option("CMD", p.words, "Command to run in it (after `--`); none: log in")
        ->type_name("");
    ssh->footer(R"(Examples:
  partlink ssh vm1                              log in
  partlink ssh vm2 -- uname -r
  partlink ssh vm1 -- sh -c 'echo a b'          words are quoted for the guest's shell
  partlink ssh vm1 -- iperf3 -c 10.77.0.2)");

    CLI::App* status = app.add_subcommand("status", "Show the partitions and whether they run");
    status->footer("");
    status->add_flag("--json", p.json, "Machine-readable output");

    CLI::App* wlm = app.add_subcommand(
        "wlm", "Workload management: the capacity directives' audit log and the control chart");
    wlm->require_subcommand(1);
    wlm->footer(R"(Examples:
  partlink wlm log                      every directive: result, cap changes, reason
  partlink wlm log --json               the same as JSON lines
  partlink wlm chart --out chart.png    S, trend, EWMA, control limits per partition)");
    CLI::App* wlm_log = wlm->add_subcommand(
        "log", "The capacity audit log: every directive partlinkd received and what it did");
    wlm_log->add_flag("--json", p.json, "The records as JSON lines, as logged");
    wlm_log->footer("From RUN/wlm-audit.jsonl, which partlinkd appends to.");
    CLI::App* wlm_chart = wlm->add_subcommand(
        "chart", "Draw each partition's control chart (S, trend, EWMA, control limits, "
                 "directives) as a PNG");
    wlm_chart
        ->add_option("--out", p.chart_out, "Where to write the picture (default RUN/wlm-chart.png)")
        ->type_name("FILE.png");
    wlm_chart->footer("From RUN/wlm-chart.jsonl and RUN/wlm-audit.jsonl; needs python3-matplotlib "
                      "(`make deps`).");

    CLI::App* segments = app.add_subcommand(
        "segments", "Shared segments: list them with who may map and who holds each, or load a "
                    "new table into the running partitions");
    segments->add_flag("--json", p.json, "Machine-readable output");
    segments->footer(R"(Examples:
  partlink segments                     each segment: id, size, who may map it, who holds it
  partlink segments load new.json       print the changes, then apply them
  partlink segments load new.json --dry-run
From RUN/segments-state.json, which partlinkd writes; `up --segments FILE` starts it.)");
    CLI::App* segments_load = segments->add_subcommand(
        "load", "Replace the table on running partitions: adds, removes (a removed segment's "
                "mappings in the guests fault with SIGBUS), changes access");
    segments_load->add_option("FILE", p.segments_file, "The new segments.json")
        ->required()
        ->type_name("");
    segments_load->add_flag("--dry-run", p.dry_run, "Only print what would change");
    segments_load->footer("");

    CLI::App* run = app.add_subcommand(
        "run", "Boot, run one command in a partition, shut everything down; exit with its status");
    add_up_options(run, p.up, host_cpus, 1);
    run->add_option("--on", p.on, "The partition to run it in (default vm1)")->type_name("VM");
    run->add_flag("--each", p.each, "Run it in every partition, one after another");
    run->footer(R"(The command goes after `--`; its output streams as it runs.  The run uses a
private run directory unless --run-dir is given, so it works beside a running `up`.
Exit status: the command's (the first non-zero with --each), 1 if booting failed.
Examples:
  partlink run -- uname -r             (one partition unless --vms)
  partlink run --kernel ~/linux --vms 2 --each -- dmesg --level=err,warn
  git bisect run partlink run --kernel . -- /mnt/tests/check.sh)");

    CLI::App* driver = app.add_subcommand(
        "driver", "The kernel-developer loop: put a rebuilt partlink.ko into running partitions");
    driver->require_subcommand(1);
    CLI::App* driver_reload = driver->add_subcommand(
        "reload", "Replace partlink.ko in running partitions (all, or the ones named), keeping "
                  "pl0's addresses and MTU; the others see the peer leave and come back");
    driver_reload->add_option("VM", p.words, "Partitions (default: every running one)")
        ->type_name("");
    driver_reload
        ->add_option("--module", p.module,
                     "The module to load (default: `make driver`'s, "
                     "BUILD/driver/<release>/partlink.ko)")
        ->type_name("FILE");
    driver_reload->footer(R"(Examples:
  make driver && partlink driver reload
  partlink driver reload vm2 --module /tmp/partlink.ko)");

    CLI::App* console = app.add_subcommand(
        "console", "Attach the terminal to a partition's serial console (detach: Ctrl-])");
    console->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    console->footer("The console's whole output is also in RUN/vmN.console (`partlink logs vmN`).");

    CLI::App* logs = app.add_subcommand("logs", "Print a partition's console and QEMU log");
    logs->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    logs->footer("");

    CLI::App* gdb = app.add_subcommand(
        "gdb", "Attach gdb to a partition's gdbstub (`up --gdb`), with the kernel's symbols and "
               "partlink.ko's when known");
    gdb->add_option("VM", p.vm, "Partition name: vm1, vm2, ...")->required()->type_name("");
    gdb->footer(R"(Words after `--` go to gdb.  Examples:
  partlink gdb vm1
  partlink gdb vm2 -- -batch -ex 'info registers')");

    CLI::App* down = app.add_subcommand(
        "down", "Stop every partition and remove its network; keeps logs and consoles");
    down->footer("");

    std::vector<std::string> reversed(args.rbegin(), args.rend()); // CLI11 wants them reversed
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return {p.run_dir, HelpCommand{app.help()}};
    } catch (const CLI::CallForAllHelp&) {
        return {p.run_dir, HelpCommand{app.help("", CLI::AppFormatMode::All)}};
    } catch (const CLI::CallForVersion& e) {
        return {p.run_dir, HelpCommand{std::string(e.what()) + "\n"}};
    } catch (const CLI::ParseError& e) {
        throw UsageError(usage_message(e, app, args));
    }

    if (after_dashes && !ssh->parsed() && !run->parsed() && !gdb->parsed())
        throw UsageError("`--` is only for `partlink ssh VM -- CMD...`, `partlink run -- CMD...` "
                         "and `partlink gdb VM -- GDB-ARGS...`");

    CommandLine result{p.run_dir, DownCommand{}};
    if (up->parsed()) {
        result.command = UpCommand{validate_up_args(p.up, host_cpus)};
    } else if (start->parsed()) {
        result.command = StartCommand{validate_start_args({p.vm, p.start_timeout})};
    } else if (stop->parsed()) {
        validate_vm_arg("stop", p.vm);
        result.command = StopCommand{p.vm};
    } else if (ssh->parsed()) {
        SshCommand cmd{p.vm, p.words};
        if (after_dashes)
            cmd.command.insert(cmd.command.end(), after_dashes->begin(), after_dashes->end());
        if (cmd.vm.empty())
            throw UsageError("ssh needs a partition name, e.g. partlink ssh vm1");
        result.command = std::move(cmd);
    } else if (status->parsed()) {
        result.command = StatusCommand{p.json};
    } else if (wlm_log->parsed()) {
        result.command = WlmLogCommand{p.json};
    } else if (wlm_chart->parsed()) {
        if (p.chart_out && p.chart_out->empty())
            throw UsageError("--out must not be empty");
        result.command = WlmChartCommand{p.chart_out};
    } else if (segments_load->parsed()) {
        if (p.segments_file.empty())
            throw UsageError("segments load needs a file, e.g. partlink segments load new.json");
        result.command = SegmentsLoadCommand{p.segments_file, p.dry_run};
    } else if (segments->parsed()) {
        result.command = SegmentsCommand{p.json};
    } else if (run->parsed()) {
        if (!after_dashes || after_dashes->empty())
            throw UsageError("run needs a command after `--`, e.g. partlink run -- uname -r");
        // One partition unless asked: the quickest boot.
        if (run->get_option("--vms")->count() == 0)
            p.up.vms = "1";
        RunCommand cmd{validate_up_args(p.up, host_cpus), {}, *after_dashes};
        if (cmd.options.dry_run)
            throw UsageError("--dry-run is for `up`");
        if (p.each && !p.on.empty())
            throw UsageError("give --on VM or --each, not both");
        if (p.each) {
            for (int i = 1; i <= cmd.options.vms; ++i)
                cmd.on.push_back(vm_name(i));
        } else {
            const std::string vm = p.on.empty() ? vm_name(1) : p.on;
            auto index = parse_vm_name(vm);
            if (!index || *index > cmd.options.vms)
                throw UsageError("--on " + vm + ": the run has vm1..vm" +
                                 std::to_string(cmd.options.vms));
            cmd.on.push_back(vm);
        }
        result.command = std::move(cmd);
    } else if (driver_reload->parsed()) {
        for (const auto& vm : p.words)
            validate_vm_arg("driver reload", vm);
        if (p.module && p.module->empty())
            throw UsageError("--module must not be empty");
        result.command = DriverReloadCommand{
            p.words, p.module ? std::optional<fs::path>(fs::absolute(*p.module)) : std::nullopt};
    } else if (console->parsed()) {
        validate_vm_arg("console", p.vm);
        result.command = ConsoleCommand{p.vm};
    } else if (logs->parsed()) {
        validate_vm_arg("logs", p.vm);
        result.command = LogsCommand{p.vm};
    } else if (gdb->parsed()) {
        validate_vm_arg("gdb", p.vm);
        result.command = GdbCommand{p.vm, after_dashes.value_or(std::vector<std::string>{})};
    } else if (down->parsed()) {
        result.command = DownCommand{};
    }
    return result;
}

} // namespace partlink::cli
