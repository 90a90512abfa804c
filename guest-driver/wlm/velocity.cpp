#include "velocity.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace plwlm {

void LinearFit::add(double x, double y) noexcept {
    ++n_;
    const auto n = static_cast<double>(n_);
    const double dx = x - mean_x_;
    const double dy = y - mean_y_;
    mean_x_ += dx / n;
    mean_y_ += dy / n;
    // Old deviation times new deviation: the exact centred update.
    sxx_ += dx * (x - mean_x_);
    sxy_ += dx * (y - mean_y_);
    syy_ += dy * (y - mean_y_);
}

VelocityTracker::VelocityTracker(VelocityConfig config)
    : config_(config) {
    if (config_.min_samples < 2)
        throw std::invalid_argument("velocity: min_samples must be at least 2 to fit a line");
    if (!(config_.min_var_c > 0) || !std::isfinite(config_.min_var_c))
        throw std::invalid_argument("velocity: min_var_c must be a positive number");
    if (!(config_.trend_alpha > 0 && config_.trend_alpha <= 1))
        throw std::invalid_argument("velocity: trend_alpha must be in (0, 1]");
}

VelocityEstimate VelocityTracker::add(double c, double packets) {
    if (!std::isfinite(c) || c < 0 || c > 1)
        throw std::invalid_argument("velocity: C must be a finite utilization in [0, 1], got " +
                                    std::to_string(c));
    if (!std::isfinite(packets) || packets < 0)
        throw std::invalid_argument("velocity: packets must be a finite, non-negative count, got " +
                                    std::to_string(packets));
    fit_.add(c, packets);
    peak_ = std::max(peak_, packets);
    last_c_ = c;
    last_p_ = packets;
    auto est = estimate();
    if (est.s && ++defined_ > config_.trend_delay) {
        // Bias-corrected EWMA (an EWMA from zero divided by the weight it
        // has gathered): early on it is the plain mean of S so far, so the
        // wild slopes of a fit over few samples fade in a few samples
        // instead of dominating the trend for ~1/alpha of them, which would
        // make S - trend drift for the whole of the chart's warm-up.
        trend_sum_ += config_.trend_alpha * (*est.s - trend_sum_);
        trend_weight_ += config_.trend_alpha * (1.0 - trend_weight_);
        trend_ = trend_sum_ / trend_weight_;
        est.s_trend = trend_;
    }
    return est;
}

VelocityEstimate VelocityTracker::estimate() const {
    VelocityEstimate est;
    est.samples = fit_.count();
    est.peak = peak_;
    est.c = last_c_;
    est.t = peak_ > 0 ? last_p_ / peak_ : 0.0;
    est.s_trend = trend_;
    // No traffic at all yet: there is no peak to normalize to, and a slope
    // of 0/0 is not a velocity.
    if (fit_.count() < config_.min_samples || fit_.var_x() < config_.min_var_c || peak_ <= 0)
        return est;
    const double slope_p = fit_.sxy() / fit_.sxx();
    const double intercept_p = fit_.mean_y() - slope_p * fit_.mean_x();
    est.s = slope_p / peak_;
    est.a = intercept_p / peak_;
    // With constant traffic there is nothing for the fit to explain: R² is
    // undefined (and S is a correct 0).
    if (fit_.syy() > 0)
        est.r2 = std::clamp(fit_.sxy() * fit_.sxy() / (fit_.sxx() * fit_.syy()), 0.0, 1.0);
    return est;
}

} // namespace plwlm
