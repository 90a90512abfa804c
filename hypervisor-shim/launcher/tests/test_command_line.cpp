#include <filesystem>
#include <fstream>
#include <stdlib.h>

#include <gtest/gtest.h>

#include "cli/command_line.hpp"
#include "error.hpp"

using namespace partlink;
using namespace partlink::cli;

namespace {

CommandLine parse(std::vector<std::string> args) {
    return parse_command_line(args, 2);
}

std::string usage_error(std::vector<std::string> args) {
    try {
        parse(args);
    } catch (const UsageError& e) {
        std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
        return what;
    }
    return "(no error)";
}

} // namespace

TEST(CommandLine, UpDefaults) {
    auto cl = parse({"up"});
    ASSERT_TRUE(std::holds_alternative<UpCommand>(cl.command));
    const auto& o = std::get<UpCommand>(cl.command).options;
    EXPECT_EQ(o.vms, 2);
    EXPECT_EQ(o.mem_mib, 512);
    EXPECT_EQ(o.net, NetMode::Partlink);
    EXPECT_FALSE(o.fabric_config);
    EXPECT_FALSE(cl.run_dir);
}

TEST(CommandLine, FabricConfig) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "partlink-fc-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    std::filesystem::path file = std::filesystem::path(tmpl) / "nets.json";
    std::ofstream(file) << R"({"networks": {"default": ["vm1", "vm2"]}, "wlm": "vm2"})";
    auto cl = parse({"up", "--fabric-config", file.string()});
    const auto& o = std::get<UpCommand>(cl.command).options;
    EXPECT_EQ(o.net, NetMode::Partlink);
    EXPECT_EQ(o.fabric_config, file);
    std::filesystem::remove_all(tmpl);
}

TEST(CommandLine, UpOptions) {
    auto cl = parse({"up", "--vms", "3", "--mem=1024", "--cpus", "2", "--accel", "tcg", "--net",
                     "virtio-socket", "--vms", "2", "--ssh-port", "10022", "--timeout", "60"});
    const auto& o = std::get<UpCommand>(cl.command).options;
    EXPECT_EQ(o.vms, 2); // the last one wins
    EXPECT_EQ(o.mem_mib, 1024);
    EXPECT_EQ(o.cpus, 2);
    EXPECT_EQ(o.accel, Accel::Tcg);
    EXPECT_EQ(o.net, NetMode::VirtioSocket);
    EXPECT_EQ(*o.ssh_port_base, 10022);
    EXPECT_EQ(o.timeout.count(), 60);
}

TEST(CommandLine, RunDirBeforeOrAfterTheCommand) {
    EXPECT_EQ(*parse({"--run-dir", "/x", "status"}).run_dir, "/x");
    EXPECT_EQ(*parse({"status", "--run-dir", "/y"}).run_dir, "/y");
    EXPECT_EQ(*parse({"up", "--run-dir=/z", "--vms", "1"}).run_dir, "/z");
}

TEST(CommandLine, UsageErrorsAreOneClearLine) {
    EXPECT_EQ(usage_error({"up", "--vms", "0"}), "--vms must be between 1 and 16");
    EXPECT_EQ(usage_error({"up", "--cpus", "9"}),
              "--cpus must be between 1 and 2 (this host has 2 CPUs)");
    EXPECT_NE(
        usage_error({"up", "--fabric-config", "/nonexistent/fabric.json"}).find("no such file"),
        std::string::npos);
    EXPECT_NE(usage_error({"up", "--net", "virtio-tap", "--fabric-config", "/x"})
                  .find("--fabric-config is for --net partlink"),
              std::string::npos);
    EXPECT_NE(usage_error({"up", "--net", "virtio-socket", "--vms", "3"}).find("exactly 2 VMs"),
              std::string::npos);
    EXPECT_EQ(usage_error({"up", "--vms"}), "--vms needs a value (see partlink --help)");
    EXPECT_EQ(usage_error({}),
              "a command is required: up, start, stop, ssh, status, wlm, segments, run, driver, "
              "console, logs, gdb, down (see partlink --help)");
    EXPECT_EQ(usage_error({"bogus"}),
              "unknown command 'bogus'; commands are up, start, stop, ssh, "
              "status, wlm, segments, run, driver, console, logs, gdb, down (see "
              "partlink --help)");
    EXPECT_NE(usage_error({"up", "--bogus"}).find("--bogus"), std::string::npos);
    EXPECT_NE(usage_error({"status", "extra"}).find("extra"), std::string::npos);
    EXPECT_EQ(usage_error({"ssh"}), "ssh needs a partition name, e.g. partlink ssh vm1");
    EXPECT_NE(usage_error({"ssh", "vm1", "uname", "-r"}).find("after `--`"), std::string::npos);
    EXPECT_NE(usage_error({"down", "--", "x"}).find("only for `partlink ssh"), std::string::npos);
    EXPECT_EQ(usage_error({"--run-dir", "", "status"}), "(no error)"); // rejected later
}

TEST(CommandLine, SshCommandAfterDashes) {
    auto cl = parse({"ssh", "vm1", "--", "sh", "-c", "echo a b"});
    const auto& s = std::get<SshCommand>(cl.command);
    EXPECT_EQ(s.vm, "vm1");
    EXPECT_EQ(s.command, (std::vector<std::string>{"sh", "-c", "echo a b"}));

    // Options of the remote command, including another `--`, are not ours.
    auto cl2 = parse({"--run-dir", "/r", "ssh", "vm2", "--", "ls", "--", "-l", "--run-dir"});
    EXPECT_EQ(std::get<SshCommand>(cl2.command).command,
              (std::vector<std::string>{"ls", "--", "-l", "--run-dir"}));
    EXPECT_EQ(*cl2.run_dir, "/r");
}

TEST(CommandLine, SshWithoutCommand) {
    auto cl = parse({"ssh", "vm3"});
    EXPECT_TRUE(std::get<SshCommand>(cl.command).command.empty());
    auto cl2 = parse({"ssh", "vm3", "--"});
    EXPECT_TRUE(std::get<SshCommand>(cl2.command).command.empty());
    auto cl3 = parse({"ssh", "vm3", "uptime"});
    EXPECT_EQ(std::get<SshCommand>(cl3.command).command, std::vector<std::string>{"uptime"});
}

TEST(CommandLine, StatusAndDown) {
    EXPECT_FALSE(std::get<StatusCommand>(parse({"status"}).command).json);
    EXPECT_TRUE(std::get<StatusCommand>(parse({"status", "--json"}).command).json);
    EXPECT_TRUE(std::holds_alternative<DownCommand>(parse({"down"}).command));
}

TEST(CommandLine, HelpAndVersion) {
    auto help = std::get<HelpCommand>(parse({"--help"}).command).text;
    for (const char* word :
         {"up", "start", "stop", "ssh", "status", "down", "--run-dir", "Examples"})
        EXPECT_NE(help.find(word), std::string::npos) << word;
    auto up_help = std::get<HelpCommand>(parse({"up", "--help"}).command).text;
    for (const char* word : {"--vms", "--mem", "--cpus", "--accel", "--net", "--ssh-port",
                             "--timeout", "virtio-socket", "--fabric-config", "default partlink"})
        EXPECT_NE(up_help.find(word), std::string::npos) << word;
    auto version = std::get<HelpCommand>(parse({"--version"}).command).text;
    EXPECT_EQ(version.rfind("partlink ", 0), 0u);
}

TEST(CommandLine, StartAndStop) {
    auto cl = parse({"start", "vm2"});
    ASSERT_TRUE(std::holds_alternative<StartCommand>(cl.command));
    const auto& start = std::get<StartCommand>(cl.command).options;
    EXPECT_EQ(start.vm, "vm2");
    EXPECT_FALSE(start.timeout); // the run's own
    EXPECT_FALSE(cl.run_dir);

    auto cl2 = parse({"--run-dir", "/r", "start", "vm16", "--timeout", "60"});
    EXPECT_EQ(std::get<StartCommand>(cl2.command).options.vm, "vm16");
    EXPECT_EQ(std::get<StartCommand>(cl2.command).options.timeout->count(), 60);
    EXPECT_EQ(*cl2.run_dir, "/r");
    EXPECT_EQ(std::get<StartCommand>(parse({"start", "--timeout=5", "vm1"}).command)
                  .options.timeout->count(),
              5);

    auto cl3 = parse({"stop", "vm3", "--run-dir", "/s"});
    ASSERT_TRUE(std::holds_alternative<StopCommand>(cl3.command));
    EXPECT_EQ(std::get<StopCommand>(cl3.command).vm, "vm3");
    EXPECT_EQ(*cl3.run_dir, "/s");
}

TEST(CommandLine, StartAndStopUsageErrors) {
    for (std::string cmd : {"start", "stop"}) {
        EXPECT_EQ(usage_error({cmd}),
                  cmd + " needs a partition name, e.g. partlink " + cmd + " vm2");
        EXPECT_EQ(usage_error({cmd, ""}),
                  cmd + " needs a partition name, e.g. partlink " + cmd + " vm2");
        for (std::string bad : {"foo", "vm", "vm0", "vm02", "vm17", "VM1", "vm1x", "vm-1"})
            EXPECT_EQ(usage_error({cmd, bad}), "'" + bad +
                                                   "' is not a partition name: partitions are vm1 "
                                                   "to vm16, e.g. partlink " +
                                                   cmd + " vm2")
                << bad;
        EXPECT_EQ(usage_error({cmd, "vm1", "vm2"}),
                  "`" + cmd + "` takes one partition, e.g. partlink " + cmd +
                      " vm2 (got also 'vm2'; see partlink " + cmd + " --help)");
        EXPECT_NE(usage_error({cmd, "vm1", "--bogus"}).find("unknown option --bogus for `" + cmd),
                  std::string::npos);
        EXPECT_NE(usage_error({cmd, "vm1", "--", "x"}).find("only for `partlink ssh"),
                  std::string::npos);
    }
    EXPECT_EQ(usage_error({"start", "vm1", "--timeout", "0"}),
              "--timeout must be between 1 and 86400");
    EXPECT_EQ(usage_error({"start", "vm1", "--timeout", "soon"}),
              "--timeout must be a whole number, not 'soon'");
    EXPECT_EQ(usage_error({"start", "vm1", "--timeout"}),
              "--timeout needs a value (see partlink --help)");
    // `stop` has no timeout of its own; `up`'s options are not `start`'s.
    EXPECT_NE(usage_error({"stop", "vm1", "--timeout", "5"}).find("--timeout"), std::string::npos);
    EXPECT_NE(usage_error({"start", "vm1", "--vms", "2"}).find("--vms"), std::string::npos);
}

TEST(CommandLine, StartAndStopHelp) {
    auto start_help = std::get<HelpCommand>(parse({"start", "--help"}).command).text;
    for (const char* word : {"VM", "--timeout", "ssh port", "partlink start vm2"})
        EXPECT_NE(start_help.find(word), std::string::npos) << word;
    auto stop_help = std::get<HelpCommand>(parse({"stop", "--help"}).command).text;
    for (const char* word : {"VM", "QMP quit", "SIGKILL", "partlink stop vm2"})
        EXPECT_NE(stop_help.find(word), std::string::npos) << word;
}

TEST(CommandLine, UpPolicy) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "partlink-pol-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    std::filesystem::path file = std::filesystem::path(tmpl) / "policy.json";
    std::ofstream(file) << R"({"privileged": "vm2", "partitions": [
        {"name": "vm1", "entitlement": 0.5}, {"name": "vm2", "entitlement": 0.5}]})";
    auto cl = parse({"up", "--policy", file.string()});
    const auto& o = std::get<UpCommand>(cl.command).options;
    EXPECT_EQ(o.policy_file, file);
    ASSERT_TRUE(o.policy);
    EXPECT_EQ(o.policy->privileged, "vm2");
    EXPECT_EQ(usage_error({"up", "--policy", file.string(), "--no-cgroups"}),
              "--policy sets the partitions' CPU cgroups; it does not go with --no-cgroups");
    EXPECT_EQ(usage_error({"up", "--policy"}), "--policy needs a value (see partlink --help)");
    std::filesystem::remove_all(tmpl);
}

TEST(CommandLine, WlmLogAndChart) {
    auto log = parse({"wlm", "log"});
    ASSERT_TRUE(std::holds_alternative<WlmLogCommand>(log.command));
    EXPECT_FALSE(std::get<WlmLogCommand>(log.command).json);
    EXPECT_TRUE(std::get<WlmLogCommand>(parse({"wlm", "log", "--json"}).command).json);
    auto chart = parse({"wlm", "chart", "--run-dir", "/r"});
    ASSERT_TRUE(std::holds_alternative<WlmChartCommand>(chart.command));
    EXPECT_FALSE(std::get<WlmChartCommand>(chart.command).out);
    EXPECT_EQ(chart.run_dir, "/r");
    auto out = parse({"--run-dir", "/r", "wlm", "chart", "--out", "c.png"});
    EXPECT_EQ(std::get<WlmChartCommand>(out.command).out, "c.png");
    // `status --json` is not `wlm log --json`.
    EXPECT_TRUE(std::get<StatusCommand>(parse({"status", "--json"}).command).json);
}

TEST(CommandLine, WlmUsageErrors) {
    EXPECT_EQ(usage_error({"wlm"}),
              "wlm needs a command: log or chart, e.g. partlink wlm log (see partlink --help)");
    EXPECT_EQ(usage_error({"wlm", "frob"}),
              "unknown wlm command 'frob'; wlm commands are log, chart (see partlink --help)");
    EXPECT_EQ(usage_error({"wlm", "log", "extra"}),
              "`wlm log` takes no arguments (got 'extra'; see partlink wlm log --help)");
    EXPECT_EQ(usage_error({"wlm", "log", "--bogus"}),
              "unknown option --bogus for `wlm log` (see partlink wlm log --help)");
    EXPECT_EQ(usage_error({"wlm", "chart", "--out"}), "--out needs a value (see partlink --help)");
    EXPECT_EQ(usage_error({"wlm", "chart", "--out", ""}), "--out must not be empty");
    EXPECT_NE(usage_error({"frob"}).find(
                  "commands are up, start, stop, ssh, status, wlm, segments, run, driver"),
              std::string::npos);
}

TEST(CommandLine, WlmHelp) {
    auto help = parse({"wlm", "--help"});
    ASSERT_TRUE(std::holds_alternative<HelpCommand>(help.command));
    EXPECT_NE(std::get<HelpCommand>(help.command).text.find("log"), std::string::npos);
    auto chart = std::get<HelpCommand>(parse({"wlm", "chart", "--help"}).command).text;
    EXPECT_NE(chart.find("--out"), std::string::npos) << chart;
    auto up = std::get<HelpCommand>(parse({"up", "--help"}).command).text;
    EXPECT_NE(up.find("--policy"), std::string::npos) << up;
}

TEST(CommandLine, DeveloperLoopUpOptions) {
    auto cl = parse({"up", "--gdb", "--append", "loglevel=7", "--qemu-arg", "-d guest_errors",
                     "--qemu-arg=vm2:-device virtio-rng-pci", "--share", "/tmp:t:rw", "--dry-run"});
    const auto& o = std::get<UpCommand>(cl.command).options;
    EXPECT_TRUE(o.boot.gdb);
    EXPECT_TRUE(o.dry_run);
    EXPECT_EQ(o.boot.append, "loglevel=7");
    ASSERT_EQ(o.boot.qemu_args.size(), 2u);
    EXPECT_EQ(o.boot.qemu_args[0], (QemuArg{0, {"-d", "guest_errors"}}));
    EXPECT_EQ(o.boot.qemu_args[1], (QemuArg{2, {"-device", "virtio-rng-pci"}}));
    ASSERT_EQ(o.boot.shares.size(), 1u);
    EXPECT_EQ(o.boot.shares[0], (Share{"/tmp", "t", true}));
}

TEST(CommandLine, RunTakesUpsOptionsAndACommand) {
    auto cl = parse({"run", "--mem", "256", "--", "uname", "-r"});
    const auto& run = std::get<RunCommand>(cl.command);
    EXPECT_EQ(run.options.vms, 1); // one partition unless asked
    EXPECT_EQ(run.options.mem_mib, 256);
    EXPECT_EQ(run.on, std::vector<std::string>{"vm1"});
    EXPECT_EQ(run.command, (std::vector<std::string>{"uname", "-r"}));

    auto each = std::get<RunCommand>(parse({"run", "--vms", "3", "--each", "--", "true"}).command);
    EXPECT_EQ(each.on, (std::vector<std::string>{"vm1", "vm2", "vm3"}));
    auto on =
        std::get<RunCommand>(parse({"run", "--vms", "2", "--on", "vm2", "--", "true"}).command);
    EXPECT_EQ(on.on, std::vector<std::string>{"vm2"});
}

TEST(CommandLine, RunUsageErrors) {
    EXPECT_EQ(usage_error({"run"}),
              "run needs a command after `--`, e.g. partlink run -- uname -r");
    EXPECT_EQ(usage_error({"run", "--on", "vm3", "--", "true"}), "--on vm3: the run has vm1..vm1");
    EXPECT_EQ(usage_error({"run", "--each", "--on", "vm1", "--", "true"}),
              "give --on VM or --each, not both");
    EXPECT_EQ(usage_error({"run", "--dry-run", "--", "true"}).substr(0, 15), "unknown option ");
    EXPECT_NE(usage_error({"status", "--", "x"}).find("`--` is only for"), std::string::npos);
}

TEST(CommandLine, DriverConsoleLogsGdb) {
    auto reload = std::get<DriverReloadCommand>(parse({"driver", "reload", "vm2", "vm3"}).command);
    EXPECT_EQ(reload.vms, (std::vector<std::string>{"vm2", "vm3"}));
    EXPECT_FALSE(reload.module);
    auto with_module =
        std::get<DriverReloadCommand>(parse({"driver", "reload", "--module", "/x/p.ko"}).command);
    EXPECT_EQ(*with_module.module, "/x/p.ko");
    EXPECT_TRUE(reload.vms.size() == 2);
    EXPECT_EQ(std::get<ConsoleCommand>(parse({"console", "vm2"}).command).vm, "vm2");
    EXPECT_EQ(std::get<LogsCommand>(parse({"logs", "vm1"}).command).vm, "vm1");
    auto gdb = std::get<GdbCommand>(parse({"gdb", "vm1", "--", "-batch"}).command);
    EXPECT_EQ(gdb.gdb_args, std::vector<std::string>{"-batch"});

    EXPECT_NE(usage_error({"driver"}).find("driver needs a command: reload"), std::string::npos);
    EXPECT_EQ(usage_error({"console"}),
              "console needs a partition name, e.g. partlink console vm1");
    EXPECT_NE(usage_error({"driver", "reload", "vmx"}).find("'vmx' is not a partition name"),
              std::string::npos);
}
