#include "monitor.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace plwlm {

Monitor::Monitor(std::string partition, std::string iface, VelocityConfig config)
    : partition_(std::move(partition))
    , iface_(std::move(iface))
    , tracker_(config) {
    if (!valid_partition_name(partition_))
        throw std::invalid_argument("partition name '" + partition_ +
                                    "' is not valid: use 1-16 of A-Z a-z 0-9 . _ -");
}

std::optional<Report> Monitor::sample(std::string_view net_dev, std::string_view stat, double mono,
                                      double wall) {
    // Parse both before touching any state: a malformed text leaves the
    // previous baseline in place.
    const auto net = parse_net_dev(net_dev, iface_);
    const auto cpu = parse_proc_stat(stat);
    const auto previous_net = std::exchange(net_, net);
    const auto previous_cpu = std::exchange(cpu_, cpu);
    const double elapsed = mono - std::exchange(mono_, mono);
    if (!previous_net || !previous_cpu || !(elapsed > 0))
        return std::nullopt;

    const auto usage = cpu_usage(*previous_cpu, cpu);
    const auto packets = packets_between(*previous_net, net);
    if (!usage || !packets)
        return std::nullopt;

    // Packets per second, not per interval: a late wake-up must not look like
    // a burst of traffic.
    const auto est = tracker_.add(std::clamp(usage->utilization, 0.0, 1.0),
                                  static_cast<double>(*packets) / elapsed);
    Report r;
    r.partition = partition_;
    r.time = wall;
    r.c = est.c;
    r.t = std::clamp(est.t, 0.0, 1.0);
    r.s = est.s;
    r.s_trend = est.s_trend;
    r.r2 = est.r2;
    r.steal = std::clamp(usage->steal, 0.0, 1.0);
    r.seq = seq_++;
    return r;
}

} // namespace plwlm
