#include "control_chart.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace plwlm {

std::string_view to_string(ChartState state) noexcept {
    switch (state) {
    case ChartState::warming_up:
        return "warming-up";
    case ChartState::in_control:
        return "in-control";
    case ChartState::out_of_control_low:
        return "out-of-control-low";
    case ChartState::out_of_control_high:
        return "out-of-control-high";
    }
    return "unknown";
}

ControlChart::ControlChart(ChartConfig config)
    : config_(config) {
    if (config_.warmup < 2)
        throw std::invalid_argument("control chart: warm-up needs at least 2 samples");
    if (!(config_.lambda > 0 && config_.lambda <= 1))
        throw std::invalid_argument("control chart: lambda must be in (0, 1]");
    if (!(config_.width > 0) || !std::isfinite(config_.width))
        throw std::invalid_argument("control chart: the limit width L must be positive");
    if (!(config_.min_sigma > 0) || !std::isfinite(config_.min_sigma))
        throw std::invalid_argument("control chart: min_sigma must be positive");
}

ChartState ControlChart::add(double x) {
    if (!std::isfinite(x))
        throw std::invalid_argument("control chart: value is not a finite number");
    ++samples_;
    if (samples_ <= config_.warmup) {
        const double d = x - warm_mean_;
        warm_mean_ += d / static_cast<double>(samples_);
        warm_m2_ += d * (x - warm_mean_);
        if (samples_ == config_.warmup) {
            center_ = warm_mean_;
            // Sample standard deviation rather than the moving range: S − trend
            // is strongly autocorrelated, and the moving range would
            // underestimate its spread and cry wolf.
            sigma_ = std::max(std::sqrt(warm_m2_ / static_cast<double>(samples_ - 1)),
                              config_.min_sigma);
            ewma_ = center_;
            state_ = ChartState::in_control;
        }
        return state_;
    }
    ewma_ = config_.lambda * x + (1 - config_.lambda) * ewma_;
    if (ewma_ < *lower_limit())
        state_ = ChartState::out_of_control_low;
    else if (ewma_ > *upper_limit())
        state_ = ChartState::out_of_control_high;
    else
        state_ = ChartState::in_control;
    return state_;
}

void ControlChart::rearm() noexcept {
    if (state_ == ChartState::warming_up)
        return;
    ewma_ = center_;
    state_ = ChartState::in_control;
}

void ControlChart::reset() noexcept {
    state_ = ChartState::warming_up;
    samples_ = 0;
    warm_mean_ = warm_m2_ = center_ = sigma_ = ewma_ = 0;
}

std::optional<double> ControlChart::center() const noexcept {
    if (state_ == ChartState::warming_up)
        return std::nullopt;
    return center_;
}

std::optional<double> ControlChart::sigma() const noexcept {
    if (state_ == ChartState::warming_up)
        return std::nullopt;
    return sigma_;
}

std::optional<double> ControlChart::lower_limit() const noexcept {
    if (state_ == ChartState::warming_up)
        return std::nullopt;
    return center_ - config_.width * sigma_ * std::sqrt(config_.lambda / (2 - config_.lambda));
}

std::optional<double> ControlChart::upper_limit() const noexcept {
    if (state_ == ChartState::warming_up)
        return std::nullopt;
    return center_ + config_.width * sigma_ * std::sqrt(config_.lambda / (2 - config_.lambda));
}

} // namespace plwlm
