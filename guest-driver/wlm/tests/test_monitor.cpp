#include <string>

#include <gtest/gtest.h>

#include "monitor.hpp"

namespace plwlm {
namespace {

std::string net_dev(std::uint64_t rx, std::uint64_t tx) {
    return "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n"
           "    lo: 0 999 0 0 0 0 0 0 0 999 0 0 0 0 0 0\n"
           "   pl0: 0 " +
           std::to_string(rx) + " 0 0 0 0 0 0 0 " + std::to_string(tx) + " 0 0 0 0 0 0\n";
}

std::string stat(std::uint64_t busy, std::uint64_t idle, std::uint64_t steal) {
    return "cpu  " + std::to_string(busy) + " 0 0 " + std::to_string(idle) + " 0 0 0 " +
           std::to_string(steal) + " 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n";
}

TEST(Monitor, FirstSampleIsTheBaseline) {
    Monitor m("vm2", "");
    EXPECT_FALSE(m.sample(net_dev(0, 0), stat(0, 0, 0), 10.0, 1000.0));
    const auto r = m.sample(net_dev(60, 40), stat(30, 60, 10), 11.0, 1001.0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->partition, "vm2");
    EXPECT_DOUBLE_EQ(r->time, 1001.0);
    EXPECT_DOUBLE_EQ(r->c, 0.3);
    EXPECT_DOUBLE_EQ(r->steal, 0.1);
    EXPECT_DOUBLE_EQ(r->t, 1.0); // the first traffic is the peak
    EXPECT_FALSE(r->s);          // one sample is no fit
    EXPECT_EQ(r->seq, 0u);
}

TEST(Monitor, VelocityBecomesDefinedAndSeqCounts) {
    Monitor m("vm3", "pl0");
    std::uint64_t busy = 0, idle = 0, pk = 0;
    ASSERT_FALSE(m.sample(net_dev(0, 0), stat(0, 0, 0), 0, 0));
    std::optional<Report> r;
    for (int i = 1; i <= 10; ++i) {
        const std::uint64_t b = 10 + 8 * (i % 5); // C from 0.1 to 0.42
        busy += b;
        idle += 100 - b;
        pk += 100 * b; // T proportional to C
        r = m.sample(net_dev(pk / 2, pk / 2), stat(busy, idle, 0), i, 1000 + i);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->seq, static_cast<std::uint64_t>(i - 1));
    }
    ASSERT_TRUE(r->s);
    // P = 10000·C, peak 4200: S = 10000 / 4200.
    EXPECT_NEAR(*r->s, 10000.0 / 4200.0, 1e-9);
    ASSERT_TRUE(r->r2);
    EXPECT_NEAR(*r->r2, 1.0, 1e-9);
}

TEST(Monitor, TrafficIsARateSoALateWakeUpIsNoBurst) {
    Monitor m("vm2", "");
    m.sample(net_dev(0, 0), stat(0, 0, 0), 0, 0);
    m.sample(net_dev(100, 0), stat(50, 50, 0), 1.0, 1);                  // 100 packets/s, the peak
    const auto r = m.sample(net_dev(300, 0), stat(150, 150, 0), 3.0, 3); // 2 s: still 100/s
    ASSERT_TRUE(r);
    EXPECT_DOUBLE_EQ(r->t, 1.0);
    EXPECT_DOUBLE_EQ(m.tracker().estimate().peak, 100.0);
}

TEST(Monitor, CounterResetSkipsOneInterval) {
    Monitor m("vm2", "");
    m.sample(net_dev(1000, 1000), stat(0, 0, 0), 0, 0);
    EXPECT_FALSE(m.sample(net_dev(5, 5), stat(10, 90, 0), 1, 1)); // interface re-created
    EXPECT_TRUE(m.sample(net_dev(15, 15), stat(20, 180, 0), 2, 2));
}

TEST(Monitor, NoTimePassedIsNoReport) {
    Monitor m("vm2", "");
    m.sample(net_dev(0, 0), stat(0, 0, 0), 0, 0);
    EXPECT_FALSE(m.sample(net_dev(1, 1), stat(0, 0, 0), 1, 1));
}

TEST(Monitor, MalformedProcKeepsTheBaseline) {
    Monitor m("vm2", "");
    m.sample(net_dev(0, 0), stat(0, 0, 0), 0, 0);
    EXPECT_THROW(m.sample("garbage", stat(10, 90, 0), 1, 1), ProcParseError);
    EXPECT_THROW(m.sample(net_dev(5, 5), "cpu 1 2\n", 1, 1), ProcParseError);
    const auto r = m.sample(net_dev(10, 10), stat(20, 80, 0), 2, 2);
    ASSERT_TRUE(r);
    EXPECT_DOUBLE_EQ(r->c, 0.2);
}

TEST(Monitor, UnknownInterfaceIsAnError) {
    Monitor m("vm2", "pl7");
    EXPECT_THROW(m.sample(net_dev(0, 0), stat(0, 0, 0), 0, 0), ProcParseError);
}

TEST(Monitor, BadPartitionNameIsRefused) {
    EXPECT_THROW(Monitor("vm 2", ""), std::invalid_argument);
}

} // namespace
} // namespace plwlm
