// plwlm: the partlink workload manager inside a guest.
//
//   plwlm monitor --to HOST:PORT [--interval S] [--partition NAME] [--iface IF]
//   plwlm manager --listen [ADDR:]PORT [--interval S] [--dry-run] [--log FILE]
//   plwlm request --partition NAME (--cpu CPUS [--donor NAME] | --memory MIB) [--no-check]
//   plwlm request --raw FILE
//   plwlm serve --listen [ADDR:]PORT [--work N] [--max-connections M] [--duration S] [-v]
//   plwlm load --to HOST:PORT [--connections K] [--duration S] [--rate R] [--json]
#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "exit_status.hpp"
#include "workload.hpp"

int main(int argc, char** argv) {
    using namespace plwlm;
    CLI::App app{"plwlm: the partlink workload manager (velocity monitor, WLM manager, "
                 "capacity requests to the hypervisor)"};
    app.require_subcommand(1);

    MonitorOptions mon;
    auto* monitor = app.add_subcommand(
        "monitor", "sample traffic and CPU, fit the velocity, report to the manager over UDP");
    monitor->add_option("--to", mon.to, "the manager, HOST:PORT (numeric IPv4)")->required();
    monitor->add_option("--interval", mon.interval, "seconds between samples")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    monitor->add_option("--partition", mon.partition, "name to report as (default: host name)");
    monitor->add_option("--iface", mon.iface,
                        "count packets of this interface only (default: all but lo)");
    monitor->add_option("--count", mon.count, "stop after this many reports (0: never)")
        ->check(CLI::NonNegativeNumber);
    monitor->add_flag("--verbose,-v", mon.verbose, "print every report sent");

    ManagerOptions mgr;
    auto* manager = app.add_subcommand(
        "manager", "receive reports, chart each partition's velocity, shift capacity");
    manager->add_option("--listen", mgr.listen, "[ADDR:]PORT to receive reports on")->required();
    manager->add_option("--interval", mgr.interval, "seconds between decisions")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    manager->add_flag("--dry-run", mgr.dry_run, "decide and log, but send no directives");
    manager->add_option("--log", mgr.log_file, "append one JSON line per decision to FILE");
    manager->add_option("--duration", mgr.duration, "stop after this many seconds (0: never)")
        ->check(CLI::NonNegativeNumber);
    manager->add_option("--step", mgr.step, "CPUs moved by one directive")
        ->check(CLI::Range(0.01, 64.0))
        ->capture_default_str();
    manager->add_option("--settle", mgr.settle, "intervals without directives after each one")
        ->check(CLI::Range(0, 1000))
        ->capture_default_str();
    manager
        ->add_option("--dead-band", mgr.dead_band, "relative velocity shortfall ignored as noise")
        ->check(CLI::Range(0.0, 10.0))
        ->capture_default_str();
    manager->add_option("--min-cpu", mgr.min_cpu, "no donor goes below this many CPUs")
        ->check(CLI::Range(0.01, 1024.0))
        ->capture_default_str();
    manager->add_option("--max-cpu", mgr.max_cpu, "no receiver goes above this many CPUs")
        ->check(CLI::Range(0.01, 1024.0));
    manager
        ->add_option("--default-cap", mgr.default_cap,
                     "assumed cap of a partition not named by --cap")
        ->check(CLI::Range(0.01, 1024.0))
        ->capture_default_str();
    manager->add_option("--cap", mgr.caps, "a partition's current cap, NAME=CPUS (repeatable)");
    manager->add_option("--device", mgr.device, "the hypervisor channel")->capture_default_str();

    RequestOptions req;
    auto* request =
        app.add_subcommand("request", "ask the hypervisor for a CPU cap or a memory size; print "
                                      "its answer");
    request->add_option("--partition", req.partition, "the partition whose setting to change");
    auto* req_cpu = request->add_option("--cpu", req.cpu, "its CPU cap, in CPUs (e.g. 0.5)");
    auto* req_memory = request->add_option("--memory", req.memory, "its memory, in MiB (e.g. 512)");
    req_cpu->excludes(req_memory);
    request
        ->add_option("--donor", req.donor,
                     "with --cpu: the partition to take an increase from (default: the others)")
        ->needs(req_cpu);
    request->add_flag("--no-check", req.no_check,
                      "send even a cap or a size plwlm refuses (zero, negative, absurd), to see "
                      "the hypervisor refuse it");
    request
        ->add_option("--raw", req.raw_file,
                     "send FILE's 128 bytes as the request, unchecked (a driver developer's "
                     "probe)")
        ->type_name("FILE");
    request->add_flag("--dry-run", req.dry_run, "validate and print, send nothing");
    request->add_option("--device", req.device, "the hypervisor channel")->capture_default_str();
    request->footer("Exit status: 0 applied or clamped, 1 refused or failed, 2 bad usage, 3 no "
                    "hypervisor (no device, or it did not answer).");

    ServeOptions srv;
    auto* serve = app.add_subcommand(
        "serve", "demo workload: a TCP server doing fixed CPU work per request line");
    serve->add_option("--listen", srv.listen, "[ADDR:]PORT to accept connections on")->required();
    serve->add_option("--work", srv.work, "rounds of work per request (about 0.5 us each)")
        ->check(CLI::Range(0u, kMaxWork))
        ->capture_default_str();
    serve->add_option("--max-connections", srv.max_connections, "connections served at once")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    serve->add_option("--duration", srv.duration, "stop after this many seconds (0: never)")
        ->check(CLI::NonNegativeNumber);
    serve->add_flag("--verbose,-v", srv.verbose, "print requests served every second");

    LoadOptions ld;
    auto* load = app.add_subcommand(
        "load", "demo workload: keep a `plwlm serve` busy, print requests served per second");
    load->add_option("--to", ld.to, "the server, HOST:PORT (numeric IPv4)")->required();
    load->add_option("--connections", ld.connections, "connections, each one request at a time")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    load->add_option("--duration", ld.duration, "stop after this many seconds (0: never)")
        ->check(CLI::NonNegativeNumber);
    load->add_option("--rate", ld.rate, "requests/s over all connections (0: as fast as served)")
        ->check(CLI::Range(0.0, 1e7))
        ->capture_default_str();
    load->add_option("--timeout", ld.timeout, "seconds to wait for a connect or an answer")
        ->check(CLI::Range(0.01, 3600.0))
        ->capture_default_str();
    load->add_flag("--json", ld.json, "JSON lines: {time, served, errors} and a summary");
    load->footer("Exit status: 0 if any request was served, 1 if none, 2 bad usage.");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }

    try {
        if (*monitor)
            return run_monitor(mon);
        if (*manager)
            return run_manager(mgr);
        if (*serve)
            return run_serve(srv);
        if (*load)
            return run_load(ld);
        return run_request(req);
    } catch (const Error& e) {
        std::cerr << "plwlm: " << e.what() << std::endl;
        return e.exit_code();
    } catch (const std::exception& e) {
        std::cerr << "plwlm: " << e.what() << std::endl;
        return kExitFailure;
    }
}
