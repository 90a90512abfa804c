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

#include "clock.hpp"
#include "exit_status.hpp"
#include "mailbox.hpp"
#include "manager.hpp"
#include "monitor.hpp"
#include "net.hpp"
#include "signals.hpp"

namespace plwlm {
namespace {

using partlink::mono_now;
using partlink::wall_now;

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

// With --dry-run, the device (if it opens) still gets the chart reports:
// they change nothing on the host. Null when there is no device.
std::unique_ptr<HypervisorChannel> open_report_channel(const std::string& device,
                                                       std::string& why_not) {
    try {
        return std::make_unique<DeviceChannel>(device);
    } catch (const Error& e) {
        why_not = e.what();
        return nullptr;
    }
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
                         "' is not valid (1-16 of A-Z a-z 0-9 . _ -); pass --partition");
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
    std::string no_reports;
    const auto report_device = o.dry_run ? open_report_channel(o.device, no_reports) : nullptr;
    HypervisorChannel* reports = o.dry_run ? report_device.get() : channel.get();
    Manager manager(config, *channel, reports);
    const auto socket = UdpSocket::bind(local);
    const StopSignals stop;
    std::cout << "plwlm manager: listening on " << socket.local().str() << ", deciding every "
              << o.interval << " s, directives " << (o.dry_run ? "not sent (dry run)" : "to ")
              << (o.dry_run ? "" : o.device) << ", charts "
              << (reports ? "reported to " + o.device : "not reported") << std::endl;
    if (!reports)
        std::cerr << "plwlm manager: charts not reported: " << no_reports << std::endl;

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
              << ", rejected " << manager.counters().rejected();
    if (reports) {
        const auto& d = manager.report_delivery();
        std::cout << "; chart reports to the hypervisor sent " << d.sent << ", failed " << d.failed
                  << ", skipped " << d.skipped;
    }
    std::cout << std::endl;
    return kExitOk;
}

namespace {

int exit_status(Outcome outcome) {
    switch (outcome) {
    case Outcome::applied:
    case Outcome::clamped:
    case Outcome::dry_run:
        return kExitOk;
    case Outcome::refused:
    case Outcome::failed:
        return kExitFailure;
    case Outcome::unavailable:
        return kExitUnavailable;
    }
    return kExitFailure;
}

// `request --raw FILE`: a developer's probe of the hypervisor's checks.
int run_raw_request(const RequestOptions& o) {
    if (o.dry_run)
        throw UsageError("request: --raw sends bytes to the device; it has no dry run");
    std::ifstream in(o.raw_file, std::ios::binary);
    if (!in)
        throw UsageError("request: cannot read " + o.raw_file);
    MailboxRequest bytes{};
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (in.gcount() != static_cast<std::streamsize>(bytes.size()) || in.peek() != EOF)
        throw UsageError("request: " + o.raw_file + " must hold exactly " +
                         std::to_string(bytes.size()) + " bytes (struct partlink_mbox_request)");
    DeviceChannel channel(o.device);
    const auto answer = channel.send_raw(bytes);
    std::cout << to_string(answer.outcome) << ": raw request";
    if (!answer.reason.empty())
        std::cout << " (" << answer.reason << ")";
    std::cout << std::endl;
    return exit_status(answer.outcome);
}

} // namespace

int run_request(const RequestOptions& o) {
    if (!o.raw_file.empty()) {
        if (o.cpu || o.memory || o.donor || !o.partition.empty())
            throw UsageError("request: --raw goes alone");
        return run_raw_request(o);
    }
    if (o.partition.empty())
        throw UsageError("request: --partition NAME is required");
    if (o.no_check && o.dry_run)
        throw UsageError("request: --no-check sends to the device; not with --dry-run");
    if (o.cpu.has_value() == o.memory.has_value())
        throw UsageError("request: give exactly one of --cpu CPUS and --memory MIB");
    if (o.donor && !o.cpu)
        throw UsageError("request: --donor goes with --cpu only");
    std::optional<Directive> cpu;
    std::optional<MemoryDirective> memory;
    // Encoded before anything is opened: a request the mailbox cannot carry
    // is a usage error, with or without the device.
    if (o.cpu) {
        cpu = Directive{o.partition, *o.cpu, o.donor};
        if (o.no_check)
            encode_unchecked(*cpu);
        else
            encode(*cpu);
    } else {
        memory = MemoryDirective{o.partition, *o.memory};
        if (o.no_check)
            encode_unchecked(*memory);
        else
            encode(*memory);
    }
    const auto answer = [&] {
        if (o.no_check)
            return cpu ? DeviceChannel(o.device).send_unchecked(*cpu)
                       : DeviceChannel(o.device).send_unchecked(*memory);
        const auto channel = open_channel(o.dry_run, o.device);
        return cpu ? channel->send(*cpu) : channel->send_memory(*memory);
    }();

    // One line: result, the target's setting now, the hypervisor's reason.
    std::cout << to_string(answer.outcome) << ": " << o.partition;
    if (cpu) {
        std::cout << " cpu " << answer.value;
        if (cpu->donor)
            std::cout << " donor " << *cpu->donor;
    } else {
        std::cout << " memory " << static_cast<std::int64_t>(answer.value) << " MiB";
    }
    if (!answer.reason.empty())
        std::cout << " (" << answer.reason << ")";
    std::cout << std::endl;
    return exit_status(answer.outcome);
}

} // namespace plwlm
