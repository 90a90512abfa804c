#include "commands.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <poll.h>
#include <sys/utsname.h>
#include <variant>

#include "exit_status.hpp"
#include "manager.hpp"
#include "monitor.hpp"
#include "net.hpp"
#include "signals.hpp"

namespace plwlm {
namespace {

double mono_now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

double wall_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string host_name() {
    utsname u{};
    if (::uname(&u) != 0)
        throw_errno("uname");
    return u.nodename;
}

// Milliseconds until `deadline`, rounded up so that poll does not wake just
// before it and spin.
int timeout_ms(double deadline, double now) {
    const double ms = std::ceil((deadline - now) * 1000);
    return static_cast<int>(std::clamp(ms, 0.0, 3600.0 * 1000));
}

// Waits for input on `fds` until `deadline`; EINTR is just an early return.
void wait_until(pollfd* fds, nfds_t count, double deadline) {
    for (nfds_t i = 0; i < count; ++i)
        fds[i].revents = 0;
    if (::poll(fds, count, timeout_ms(deadline, mono_now())) < 0 && errno != EINTR)
        throw_errno("poll");
}

std::unique_ptr<HypervisorChannel> open_channel(bool dry_run, const std::string& device) {
    if (dry_run)
        return std::make_unique<DryRunChannel>();
    return std::make_unique<DeviceChannel>(device);
}

std::map<std::string, double> parse_caps(const std::vector<std::string>& specs) {
    std::map<std::string, double> caps;
    for (const auto& spec : specs) {
        const auto eq = spec.find('=');
        const auto name = spec.substr(0, eq);
        double cpus = 0;
        bool ok = eq != std::string::npos && valid_partition_name(name);
        if (ok) {
            const char* first = spec.data() + eq + 1;
            const char* last = spec.data() + spec.size();
            const auto [ptr, ec] = std::from_chars(first, last, cpus);
            ok = ec == std::errc{} && ptr == last && first != last && std::isfinite(cpus) &&
                 cpus > 0 && cpus <= kMaxDirectiveCpus;
        }
        if (!ok)
            throw UsageError("--cap '" + spec + "': expected NAME=CPUS, e.g. vm2=0.5");
        caps[name] = cpus;
    }
    return caps;
}

} // namespace

int run_monitor(const MonitorOptions& o) {
    const auto to = parse_endpoint(o.to);
    const auto name = o.partition.empty() ? host_name() : o.partition;
    if (!valid_partition_name(name))
        throw UsageError("partition name '" + name +
                         "' is not valid (1-64 of A-Z a-z 0-9 . _ -); pass --partition");
    if (o.count < 0)
        throw UsageError("--count must be 0 (run until stopped) or more");
    Monitor monitor(name, o.iface);
    const UdpSocket socket;
    const StopSignals stop;
    long sent = 0;
    bool announced = false;
    bool send_failing = false;
    double next = mono_now();
    for (;;) {
        const auto net_dev = read_proc_file(o.proc + "/net/dev");
        const auto stat = read_proc_file(o.proc + "/stat");
        std::optional<Report> report;
        try {
            report = monitor.sample(net_dev, stat, mono_now(), wall_now());
        } catch (const ProcParseError& e) {
            throw Error(e.what());
        }
        // Announced only once /proc parsed: a bad --iface prints its error
        // and nothing else.
        if (!announced)
            std::cerr << "plwlm monitor: " << name << " reporting to " << to.str() << " every "
                      << o.interval << " s" << std::endl;
        announced = true;
        if (report) {
            const auto json = to_json(*report);
            try {
                socket.send_to(to, json);
                if (send_failing)
                    std::cerr << "plwlm monitor: sending again" << std::endl;
                send_failing = false;
            } catch (const Error& e) {
                // The manager's guest may not be up yet: keep sampling, but
                // say so once, not every second.
                if (!send_failing)
                    std::cerr << "plwlm monitor: " << e.what() << " (will keep trying)"
                              << std::endl;
                send_failing = true;
            }
            if (o.verbose)
                std::cout << json << std::endl;
            if (o.count > 0 && ++sent >= o.count)
                return kExitOk;
        }
        next += o.interval;
        const double now = mono_now();
        if (next < now) // overslept (suspended, starved): do not try to catch up
            next = now + o.interval;
        pollfd fds[] = {{stop.fd(), POLLIN, 0}};
        for (;;) {
            wait_until(fds, 1, next);
            if (fds[0].revents & POLLIN) {
                stop.take();
                return kExitOk;
            }
            if (mono_now() >= next)
                break;
        }
    }
}

int run_manager(const ManagerOptions& o) {
    const auto local = parse_listen(o.listen);
    if (o.duration < 0)
        throw UsageError("--duration must be 0 (run until stopped) or a number of seconds");

    ManagerConfig config;
    config.interval = o.interval;
    config.decider.step = o.step;
    config.decider.min_step = std::min(config.decider.min_step, o.step);
    config.decider.settle_intervals = o.settle;
    config.decider.dead_band = o.dead_band;
    config.min_cap = o.min_cpu;
    config.max_cap = o.max_cpu;
    config.default_cap = o.default_cap;
    config.caps = parse_caps(o.caps);
    for (const auto& [name, cap] : config.caps)
        if (cap < o.min_cpu || cap > o.max_cpu)
            throw UsageError("--cap " + name +
                             ": the cap must lie between --min-cpu and --max-cpu");

    std::ofstream log;
    if (!o.log_file.empty()) {
        log.open(o.log_file, std::ios::app);
        if (!log)
            throw Error(errno_message("cannot open the log " + o.log_file, errno) +
                        ": check the directory exists and is writable");
    }
    const auto channel = open_channel(o.dry_run, o.device);
    Manager manager(config, *channel);
    const auto socket = UdpSocket::bind(local);
    const StopSignals stop;
    std::cout << "plwlm manager: listening on " << socket.local().str() << ", deciding every "
              << o.interval << " s, directives " << (o.dry_run ? "not sent (dry run)" : "to ")
              << (o.dry_run ? "" : o.device) << std::endl;

    const double start = mono_now();
    const double end =
        o.duration > 0 ? start + o.duration : std::numeric_limits<double>::infinity();
    double next = start + o.interval;
    pollfd fds[] = {{socket.fd(), POLLIN, 0}, {stop.fd(), POLLIN, 0}};
    for (;;) {
        wait_until(fds, 2, std::min(next, end));
        if (fds[1].revents & POLLIN) {
            stop.take();
            break;
        }
        if (fds[0].revents & POLLIN) {
            // Bounded, so that a flood of datagrams cannot starve decisions.
            for (int i = 0; i < 256; ++i) {
                const auto d = socket.receive(kMaxReportBytes + 1);
                if (!d)
                    break;
                const auto result =
                    d->size > kMaxReportBytes
                        ? ParseResult(Rejection{RejectReason::oversize, "datagram too long"})
                        : parse_report(d->payload);
                if (const auto* r = std::get_if<Report>(&result))
                    manager.on_report(*r, mono_now());
                else
                    manager.on_rejected(std::get<Rejection>(result));
            }
        }
        const double now = mono_now();
        if (now >= next) {
            const auto tick = manager.tick(now, wall_now());
            std::cout << tick.line << std::endl;
            if (log.is_open())
                log << tick.log.dump() << std::endl;
            next += o.interval;
            if (next <= now)
                next = now + o.interval;
        }
        if (now >= end)
            break;
    }
    std::cout << "plwlm manager: stopped; reports accepted " << manager.counters().accepted()
              << ", rejected " << manager.counters().rejected() << std::endl;
    return kExitOk;
}

int run_request(const RequestOptions& o) {
    const Directive directive{o.partition, o.cpu, std::nullopt};
    validate(directive);
    const auto channel = open_channel(o.dry_run, o.device);
    const auto answer = channel->send(directive);
    std::cout << to_string(answer.outcome) << ": " << directive.target << " cpu " << answer.value;
    if (!answer.reason.empty())
        std::cout << " (" << answer.reason << ")";
    std::cout << std::endl;
    return accepted(answer) ? kExitOk : kExitFailure;
}

} // namespace plwlm
