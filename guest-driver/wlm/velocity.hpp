// The velocity metric: how much served traffic one unit of CPU buys.
//
// Each interval gives one sample (C, P): CPU utilization and packets in +
// out. T = P / peak(P so far). A cumulative least-squares fit over every
// sample so far, T(C) = a + S·C, gives the velocity S (the patent's example
// fit is T = 0.864 + 1.12·C).
//
// Renormalizing on a new peak: the fit is kept in raw packets, P = a_P +
// S_P·C, and divided by the current peak when read. Dividing every past T by
// a new peak scales a and S by the same factor, so this *is* the fit of all
// samples renormalized to the newest peak, exact and without revisiting old
// samples.
//
// The trend of S is a slow (bias-corrected) EWMA of S, deliberately NOT rescaled when the peak
// moves: traffic reaching a new peak without the velocity to serve it (more
// CPU per unit of peak) shows as S falling below its trend, which is the
// leading indicator the manager charts.
#pragma once

#include <cstddef>
#include <optional>

namespace plwlm {

// Bivariate running means and centred co-moments (Welford), so that a fit
// over millions of samples of C near 0.5 does not cancel catastrophically
// the way raw sums of C² and C·T would.
class LinearFit {
public:
    void add(double x, double y) noexcept;

    std::size_t count() const noexcept { return n_; }
    double mean_x() const noexcept { return mean_x_; }
    double mean_y() const noexcept { return mean_y_; }
    // Population variance of x: the spread the slope is fitted over.
    double var_x() const noexcept { return n_ ? sxx_ / static_cast<double>(n_) : 0.0; }
    double sxx() const noexcept { return sxx_; }
    double sxy() const noexcept { return sxy_; }
    double syy() const noexcept { return syy_; }

private:
    std::size_t n_ = 0;
    double mean_x_ = 0;
    double mean_y_ = 0;
    double sxx_ = 0;
    double sxy_ = 0;
    double syy_ = 0;
};

struct VelocityConfig {
    // S is undefined with fewer samples than this...
    std::size_t min_samples = 5;
    // ...or while the variance of C is below this (standard deviation 0.01):
    // a slope fitted over a C that barely moved is noise divided by ~0.
    double min_var_c = 1e-4;
    // EWMA weight of the trend of S: ~1/alpha samples of memory (10 s at a
    // 1 s interval). Slow enough that a drop of S shows against it for
    // several intervals (the manager's chart needs two or three), fast
    // enough that the drift of a young fit has left it before the chart's
    // warm-up is over: with 0.05 that drift dominated the warm-up and the
    // chart read a later drop as "high" (measured under TCG).
    double trend_alpha = 0.1;
    // The trend starts once S was defined this many times: the first slopes
    // of a young fit swing widely, and a trend that remembers them drifts
    // through the manager's whole chart warm-up.
    std::size_t trend_delay = 10;
};

struct VelocityEstimate {
    std::size_t samples = 0;
    double peak = 0;               // largest P so far, packets per interval
    double c = 0;                  // the latest sample's C
    double t = 0;                  // the latest sample's T = P / peak, in [0, 1]
    std::optional<double> a;       // intercept of T(C); set whenever s is
    std::optional<double> s;       // velocity; empty when the fit is not meaningful
    std::optional<double> r2;      // coefficient of determination of the fit
    std::optional<double> s_trend; // empty until S was defined once
};

class VelocityTracker {
public:
    explicit VelocityTracker(VelocityConfig config = {});

    // One interval: C in [0, 1], packets >= 0, both finite. Anything else is
    // std::invalid_argument and leaves the tracker as it was.
    VelocityEstimate add(double c, double packets);

    VelocityEstimate estimate() const;
    const VelocityConfig& config() const noexcept { return config_; }

private:
    VelocityConfig config_;
    LinearFit fit_;
    double peak_ = 0;
    double last_c_ = 0;
    double last_p_ = 0;
    std::optional<double> trend_;
    std::size_t defined_ = 0; // samples with S defined
    double trend_sum_ = 0;    // EWMA of S started from 0
    double trend_weight_ = 0; // the same EWMA of 1: what trend_sum_ gathered
};

} // namespace plwlm
