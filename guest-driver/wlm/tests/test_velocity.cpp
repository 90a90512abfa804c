#include <cmath>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "velocity.hpp"

namespace plwlm {
namespace {

// The patent's example fit: T(C) = 0.864 + 1.12·C.
constexpr double kA = 0.864;
constexpr double kS = 1.12;
// T reaches its peak of 1 at this C, so that the normalized fit is the
// patent's line exactly.
constexpr double kCPeak = (1 - kA) / kS;
constexpr double kPeakPackets = 50000;

TEST(LinearFit, RecoversALineAndIsStableFarFromZero) {
    LinearFit fit;
    // C near 0.5 with tiny spread and huge offsets in y: raw sums of x² and
    // x·y would lose everything to cancellation.
    long double sum = 0;
    constexpr int kN = 100000;
    for (int i = 0; i < kN; ++i) {
        const double x = 0.5 + 1e-4 * (i % 7);
        sum += x;
        fit.add(x, 1e9 + 3.0 * x);
    }
    EXPECT_NEAR(fit.sxy() / fit.sxx(), 3.0, 1e-3);
    EXPECT_NEAR(fit.mean_x(), static_cast<double>(sum / kN), 1e-12);
    EXPECT_NEAR(fit.var_x(), 4e-8, 1e-9); // variance of 1e-4·(0..6)
}

TEST(Velocity, PatentExampleExact) {
    VelocityTracker v;
    VelocityEstimate est;
    for (int i = 0; i <= 40; ++i) {
        const double c = kCPeak * i / 40.0;
        est = v.add(c, kPeakPackets * (kA + kS * c));
    }
    ASSERT_TRUE(est.s);
    ASSERT_TRUE(est.a);
    EXPECT_NEAR(*est.a, kA, 1e-9);
    EXPECT_NEAR(*est.s, kS, 1e-9);
    ASSERT_TRUE(est.r2);
    EXPECT_NEAR(*est.r2, 1.0, 1e-9);
    EXPECT_DOUBLE_EQ(est.peak, kPeakPackets);
}

TEST(Velocity, PatentExampleWithNoise) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<double> c_dist(0.0, kCPeak);
    std::normal_distribution<double> noise(0.0, 0.01); // 1% of peak
    VelocityTracker v;
    VelocityEstimate est;
    // One sample sits at the peak so that normalization matches the line.
    v.add(kCPeak, kPeakPackets);
    for (int i = 0; i < 2000; ++i) {
        const double c = c_dist(rng);
        const double t = std::min(kA + kS * c + noise(rng), 1.0);
        est = v.add(c, kPeakPackets * t);
    }
    ASSERT_TRUE(est.s);
    EXPECT_NEAR(*est.a, kA, 0.01);
    EXPECT_NEAR(*est.s, kS, 0.1);
    ASSERT_TRUE(est.r2);
    EXPECT_GT(*est.r2, 0.3);
    EXPECT_LT(*est.r2, 1.0);
}

TEST(Velocity, NewPeakRenormalizesTheWholeFit) {
    VelocityTracker v;
    for (int i = 0; i <= 10; ++i)
        v.add(0.05 * i, 100 + 200 * 0.05 * i); // peak 200
    const auto before = v.estimate();
    ASSERT_TRUE(before.s);
    EXPECT_NEAR(*before.s, 1.0, 1e-9); // 200 packets per unit C / peak 200
    // A new peak of 300 on the same line: every old T shrinks by 2/3, and so
    // do a and S, without revisiting the old samples.
    v.add(1.0, 100 + 200 * 1.0);
    const auto after = v.estimate();
    ASSERT_TRUE(after.s);
    EXPECT_NEAR(*after.s, 200.0 / 300.0, 1e-9);
    EXPECT_NEAR(*after.a, 100.0 / 300.0, 1e-9);
    EXPECT_DOUBLE_EQ(after.t, 1.0);
}

TEST(Velocity, TrendSettlesOnASteadyLineAndLagsANewPeak) {
    VelocityTracker v;
    auto c_at = [](int i) {
        return 0.1 + 0.04 * (i % 10);
    };
    for (int i = 0; i < 400; ++i)
        v.add(c_at(i), 1000 * (0.2 + 0.8 * c_at(i)));
    auto est = v.estimate();
    ASSERT_TRUE(est.s && est.s_trend);
    // A steady line: the trend has caught up with S.
    EXPECT_NEAR(*est.s_trend, *est.s, 1e-6);
    // Traffic doubles at the same C: a new peak, S halves at once and the
    // trend does not follow at once. That gap is what the manager charts.
    est = v.add(c_at(9), 2000 * (0.2 + 0.8 * c_at(9)));
    EXPECT_LT(*est.s, 0.9 * *est.s_trend);
}

TEST(Velocity, ConstantCIsUndefinedNotHuge) {
    VelocityTracker v;
    for (int i = 0; i < 100; ++i) {
        const auto est = v.add(0.5, 1000 + i); // traffic moves, C does not
        EXPECT_FALSE(est.s);
        EXPECT_FALSE(est.a);
        EXPECT_FALSE(est.s_trend);
    }
    // Barely moving C (below the variance threshold) too.
    VelocityTracker w;
    for (int i = 0; i < 100; ++i)
        EXPECT_FALSE(w.add(0.5 + 1e-4 * (i % 2), 1000 + 500 * (i % 2)).s);
}

TEST(Velocity, TooFewSamplesIsUndefined) {
    VelocityTracker v;
    EXPECT_FALSE(v.add(0.1, 100).s);
    EXPECT_FALSE(v.estimate().s);
    for (int i = 0; i < 3; ++i)
        EXPECT_FALSE(v.add(0.2 + 0.2 * i, 200 + 100 * i).s);
    EXPECT_TRUE(v.add(0.9, 600).s); // the fifth sample
}

TEST(Velocity, NonFiniteAndOutOfRangeInputsAreRejected) {
    VelocityTracker v;
    v.add(0.2, 100);
    const auto nan = std::numeric_limits<double>::quiet_NaN();
    const auto inf = std::numeric_limits<double>::infinity();
    EXPECT_THROW(v.add(nan, 100), std::invalid_argument);
    EXPECT_THROW(v.add(0.5, nan), std::invalid_argument);
    EXPECT_THROW(v.add(inf, 100), std::invalid_argument);
    EXPECT_THROW(v.add(0.5, inf), std::invalid_argument);
    EXPECT_THROW(v.add(-0.1, 100), std::invalid_argument);
    EXPECT_THROW(v.add(1.1, 100), std::invalid_argument);
    EXPECT_THROW(v.add(0.5, -1), std::invalid_argument);
    // Nothing of the rejected samples leaked in.
    EXPECT_EQ(v.estimate().samples, 1u);
    EXPECT_DOUBLE_EQ(v.estimate().peak, 100);
}

TEST(Velocity, AllZeroTrafficHasNoVelocity) {
    VelocityTracker v;
    for (int i = 0; i < 50; ++i) {
        const auto est = v.add(0.02 * (i % 30), 0);
        EXPECT_FALSE(est.s);
        EXPECT_DOUBLE_EQ(est.t, 0.0);
        EXPECT_FALSE(std::isnan(est.t));
    }
}

TEST(Velocity, ConstantTrafficHasZeroVelocityAndNoR2) {
    VelocityTracker v;
    VelocityEstimate est;
    for (int i = 0; i < 20; ++i)
        est = v.add(0.05 * i, 500);
    ASSERT_TRUE(est.s);
    EXPECT_DOUBLE_EQ(*est.s, 0.0);
    EXPECT_FALSE(est.r2);
}

TEST(Velocity, BadConfigurationIsRefused) {
    EXPECT_THROW(VelocityTracker(VelocityConfig{1, 1e-4, 0.05}), std::invalid_argument);
    EXPECT_THROW(VelocityTracker(VelocityConfig{5, 0, 0.05}), std::invalid_argument);
    EXPECT_THROW(VelocityTracker(VelocityConfig{5, 1e-4, 0}), std::invalid_argument);
}

} // namespace
} // namespace plwlm
