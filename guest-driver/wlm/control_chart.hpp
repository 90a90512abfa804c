// An EWMA control chart of one partition's velocity deviation x = S − trend.
//
// Warm-up: the first `warmup` values are the in-control phase; their mean is
// the centre line and their spread sigma. After it, z = λ·x + (1 − λ)·z,
// starting at the centre, against limits centre ± L·sigma·sqrt(λ / (2 − λ))
// (the asymptotic EWMA limits). The rule set is in README.md.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace plwlm {

enum class ChartState {
    warming_up,
    in_control,
    out_of_control_low,  // velocity below its trend: the partition may need CPU
    out_of_control_high, // velocity above its trend: it may have CPU to spare
};

std::string_view to_string(ChartState state) noexcept;

struct ChartConfig {
    std::size_t warmup = 20;
    double lambda = 0.2;
    double width = 3.0; // L, in sigmas of the EWMA
    // Sigma never goes below this, so that a perfectly quiet warm-up does not
    // make every later wiggle "out of control".
    double min_sigma = 1e-3;
};

class ControlChart {
public:
    explicit ControlChart(ChartConfig config = {});

    // One value of S − trend. Non-finite values are std::invalid_argument
    // and change nothing.
    ChartState add(double x);

    // Restart the EWMA at the centre line, keeping the limits: after a
    // directive changed this partition's capacity, the old evidence has been
    // acted on and must not trigger a second directive.
    void rearm() noexcept;

    // Forget everything and warm up again (the monitor restarted).
    void reset() noexcept;

    ChartState state() const noexcept { return state_; }
    std::size_t samples() const noexcept { return samples_; }
    double ewma() const noexcept { return ewma_; }
    // Empty while warming up.
    std::optional<double> center() const noexcept;
    std::optional<double> lower_limit() const noexcept;
    std::optional<double> upper_limit() const noexcept;
    std::optional<double> sigma() const noexcept;

    const ChartConfig& config() const noexcept { return config_; }

private:
    ChartConfig config_;
    ChartState state_ = ChartState::warming_up;
    std::size_t samples_ = 0;
    // Warm-up statistics (Welford).
    double warm_mean_ = 0;
    double warm_m2_ = 0;
    double center_ = 0;
    double sigma_ = 0;
    double ewma_ = 0;
};

} // namespace plwlm
