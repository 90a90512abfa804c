#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "control_chart.hpp"

namespace plwlm {
namespace {

ControlChart warmed(double sigma, unsigned seed = 1) {
    ControlChart chart;
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0.0, sigma);
    for (std::size_t i = 0; i < chart.config().warmup; ++i)
        chart.add(noise(rng));
    return chart;
}

TEST(ControlChart, WarmsUpThenInControl) {
    ControlChart chart;
    for (std::size_t i = 0; i + 1 < chart.config().warmup; ++i) {
        EXPECT_EQ(chart.add(0.01 * (i % 3)), ChartState::warming_up);
        EXPECT_FALSE(chart.center());
        EXPECT_FALSE(chart.lower_limit());
    }
    EXPECT_EQ(chart.add(0.0), ChartState::in_control);
    ASSERT_TRUE(chart.center() && chart.lower_limit() && chart.upper_limit() && chart.sigma());
    EXPECT_LT(*chart.lower_limit(), *chart.center());
    EXPECT_GT(*chart.upper_limit(), *chart.center());
}

TEST(ControlChart, LimitsFollowTheEwmaFormula) {
    ControlChart chart;
    for (std::size_t i = 0; i < chart.config().warmup; ++i)
        chart.add(i % 2 ? 0.1 : -0.1);
    const double lambda = chart.config().lambda;
    const double half = chart.config().width * *chart.sigma() * std::sqrt(lambda / (2 - lambda));
    EXPECT_NEAR(*chart.upper_limit() - *chart.center(), half, 1e-12);
    EXPECT_NEAR(*chart.center() - *chart.lower_limit(), half, 1e-12);
}

TEST(ControlChart, StaysInControlUnderInControlNoise) {
    auto chart = warmed(0.02);
    std::mt19937 rng(7);
    std::normal_distribution<double> noise(0.0, 0.02);
    int alarms = 0;
    for (int i = 0; i < 200; ++i)
        alarms += chart.add(noise(rng)) != ChartState::in_control;
    // 3-sigma EWMA limits: the in-control run length is in the hundreds.
    EXPECT_LE(alarms, 2);
}

TEST(ControlChart, DownwardShiftGoesLowWithinAFewSamples) {
    auto chart = warmed(0.02);
    int n = 0;
    while (chart.add(-0.1) != ChartState::out_of_control_low)
        ASSERT_LT(++n, 10);
    EXPECT_EQ(chart.state(), ChartState::out_of_control_low);
}

TEST(ControlChart, UpwardShiftGoesHigh) {
    auto chart = warmed(0.02);
    for (int i = 0; i < 10; ++i)
        chart.add(0.1);
    EXPECT_EQ(chart.state(), ChartState::out_of_control_high);
}

TEST(ControlChart, RearmReturnsToTheCentreKeepingLimits) {
    auto chart = warmed(0.02);
    const auto lcl = *chart.lower_limit();
    for (int i = 0; i < 10; ++i)
        chart.add(-0.2);
    ASSERT_EQ(chart.state(), ChartState::out_of_control_low);
    chart.rearm();
    EXPECT_EQ(chart.state(), ChartState::in_control);
    EXPECT_DOUBLE_EQ(chart.ewma(), *chart.center());
    EXPECT_DOUBLE_EQ(*chart.lower_limit(), lcl);
}

TEST(ControlChart, ResetWarmsUpAgain) {
    auto chart = warmed(0.02);
    chart.reset();
    EXPECT_EQ(chart.state(), ChartState::warming_up);
    EXPECT_EQ(chart.samples(), 0u);
}

TEST(ControlChart, QuietWarmupUsesTheSigmaFloor) {
    ControlChart chart;
    for (std::size_t i = 0; i < chart.config().warmup; ++i)
        chart.add(0.5);
    EXPECT_DOUBLE_EQ(*chart.sigma(), chart.config().min_sigma);
    EXPECT_EQ(chart.add(0.5 + 1e-6), ChartState::in_control);
}

TEST(ControlChart, RejectsNonFiniteValues) {
    auto chart = warmed(0.02);
    const auto before = chart.ewma();
    EXPECT_THROW(chart.add(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
    EXPECT_THROW(chart.add(std::numeric_limits<double>::infinity()), std::invalid_argument);
    EXPECT_DOUBLE_EQ(chart.ewma(), before);
}

TEST(ControlChart, StateNames) {
    EXPECT_EQ(to_string(ChartState::warming_up), "warming-up");
    EXPECT_EQ(to_string(ChartState::in_control), "in-control");
    EXPECT_EQ(to_string(ChartState::out_of_control_low), "out-of-control-low");
    EXPECT_EQ(to_string(ChartState::out_of_control_high), "out-of-control-high");
}

TEST(ControlChart, BadConfigurationIsRefused) {
    EXPECT_THROW(ControlChart(ChartConfig{1, 0.2, 3, 1e-3}), std::invalid_argument);
    EXPECT_THROW(ControlChart(ChartConfig{20, 0, 3, 1e-3}), std::invalid_argument);
    EXPECT_THROW(ControlChart(ChartConfig{20, 1.5, 3, 1e-3}), std::invalid_argument);
    EXPECT_THROW(ControlChart(ChartConfig{20, 0.2, 0, 1e-3}), std::invalid_argument);
    EXPECT_THROW(ControlChart(ChartConfig{20, 0.2, 3, 0}), std::invalid_argument);
}

} // namespace
} // namespace plwlm
