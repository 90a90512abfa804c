// The monitor's arithmetic: two readings of /proc in, one report out. No
// I/O here, so that tests can drive it with literal /proc texts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "proc_stats.hpp"
#include "report.hpp"
#include "velocity.hpp"

namespace plwlm {

class Monitor {
public:
    // `iface` empty: every interface but lo.
    Monitor(std::string partition, std::string iface, VelocityConfig config = {});

    // The texts of /proc/net/dev and /proc/stat, read at monotonic time
    // `mono` and wall time `wall` (seconds). The first call only sets the
    // baseline and returns nothing; so does an interval in which no time
    // passed or a counter was reset. Malformed texts throw ProcParseError.
    std::optional<Report> sample(std::string_view net_dev, std::string_view stat, double mono,
                                 double wall);

    const VelocityTracker& tracker() const noexcept { return tracker_; }

private:
    std::string partition_;
    std::string iface_;
    VelocityTracker tracker_;
    std::optional<NetCounters> net_;
    std::optional<CpuTimes> cpu_;
    double mono_ = 0;
    std::uint64_t seq_ = 0;
};

} // namespace plwlm
