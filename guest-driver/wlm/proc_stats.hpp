// What the monitor reads from /proc: packet counters and CPU time.
//
// The parsers take the file's text so that tests can feed literal fixtures;
// anything that does not look like what the kernel writes is a ProcParseError
// naming the file, the line and what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace plwlm {

class ProcParseError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct NetCounters {
    std::uint64_t rx_packets = 0;
    std::uint64_t tx_packets = 0;
};

// Packets received and sent by `iface`, or summed over every interface but
// `lo` when `iface` is empty (loopback traffic is the guest talking to
// itself, not work served to others).
NetCounters parse_net_dev(std::string_view text, std::string_view iface = {});

// The aggregate "cpu" line of /proc/stat, in USER_HZ ticks. guest and
// guest_nice are left out: the kernel already counts them in user and nice.
struct CpuTimes {
    std::uint64_t user = 0;
    std::uint64_t nice = 0;
    std::uint64_t system = 0;
    std::uint64_t idle = 0;
    std::uint64_t iowait = 0;
    std::uint64_t irq = 0;
    std::uint64_t softirq = 0;
    std::uint64_t steal = 0;
};

CpuTimes parse_proc_stat(std::string_view text);

struct CpuUsage {
    // C: the fraction of all CPU time this guest spent running (user, nice,
    // system, irq, softirq), in [0, 1]. iowait counts as idle.
    double utilization = 0;
    // The fraction of time the guest wanted a CPU that the hypervisor gave to
    // someone else: how a capped partition sees its cap.
    double steal = 0;
};

// Usage between two samples; empty when no time elapsed between them.
std::optional<CpuUsage> cpu_usage(const CpuTimes& before, const CpuTimes& after);

// Packets in + out between two samples; empty when a counter went backwards
// (interface re-created, counters reset): that interval says nothing.
std::optional<std::uint64_t> packets_between(const NetCounters& before, const NetCounters& after);

// The whole text of a /proc file (their size is not known in advance).
std::string read_proc_file(const std::string& path);

} // namespace plwlm
