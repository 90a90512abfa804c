#include <gtest/gtest.h>

#include "proc_stats.hpp"

namespace plwlm {
namespace {

constexpr const char* kNetDev =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo:  123456     100    0    0    0     0          0         0   123456     100    0 "
    "   0    0     0       0          0\n"
    "  eth0: 9999999    2000    0    3    0     0          0         5  8888888    1500    0 "
    "   0    0     0       0          0\n"
    "   pl0:12345678900     700    0    0    0     0          0         0 1000     300    0 "
    "   0    0     0       0          0\n";

constexpr const char* kStat = "cpu  100 20 30 400 50 6 7 8 0 0\n"
                              "cpu0 50 10 15 200 25 3 3 4 0 0\n"
                              "cpu1 50 10 15 200 25 3 4 4 0 0\n"
                              "intr 12345 0 0\n"
                              "ctxt 999\n";

TEST(NetDev, SumsEveryInterfaceButLoopback) {
    const auto n = parse_net_dev(kNetDev);
    EXPECT_EQ(n.rx_packets, 2000u + 700u);
    EXPECT_EQ(n.tx_packets, 1500u + 300u);
}

TEST(NetDev, NamedInterfaceOnly) {
    const auto n = parse_net_dev(kNetDev, "pl0");
    EXPECT_EQ(n.rx_packets, 700u);
    EXPECT_EQ(n.tx_packets, 300u);
    EXPECT_EQ(parse_net_dev(kNetDev, "lo").rx_packets, 100u);
}

TEST(NetDev, CountersGluedToTheColonParse) {
    // pl0's byte counter in the fixture touches the colon, as on old kernels.
    EXPECT_EQ(parse_net_dev(kNetDev, "pl0").rx_packets, 700u);
}

TEST(NetDev, MissingInterfaceNamesTheOnesThere) {
    try {
        parse_net_dev(kNetDev, "pl9");
        FAIL() << "expected ProcParseError";
    } catch (const ProcParseError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("pl9"), std::string::npos);
        EXPECT_NE(what.find("eth0"), std::string::npos);
        EXPECT_NE(what.find("--iface"), std::string::npos);
    }
}

TEST(NetDev, OnlyLoopbackIsZeroTraffic) {
    const auto n = parse_net_dev("Inter-| a\n face | b\n lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 "
                                 "15 16\n");
    EXPECT_EQ(n.rx_packets, 0u);
    EXPECT_EQ(n.tx_packets, 0u);
}

TEST(NetDev, MalformedInputIsAClearError) {
    // Too few counters.
    EXPECT_THROW(parse_net_dev("Inter-|\n face |\n eth0: 1 2 3\n"), ProcParseError);
    // A counter that is not a number.
    EXPECT_THROW(parse_net_dev("Inter-|\n face |\n eth0: 1 x 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"),
                 ProcParseError);
    // Negative numbers are not counters.
    EXPECT_THROW(
        parse_net_dev("Inter-|\n face |\n eth0: 1 -2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"),
        ProcParseError);
    // Garbage line, no header, empty name, empty file.
    EXPECT_THROW(parse_net_dev("Inter-|\n face |\nhello world\n"), ProcParseError);
    EXPECT_THROW(parse_net_dev(" eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"), ProcParseError);
    EXPECT_THROW(parse_net_dev("Inter-|\n face |\n : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"),
                 ProcParseError);
    EXPECT_THROW(parse_net_dev(""), ProcParseError);
    // Overflowing a 64-bit counter.
    EXPECT_THROW(parse_net_dev("Inter-|\n face |\n eth0: 1 99999999999999999999999 3 4 5 6 7 8 "
                               "9 10 11 12 13 14 15 16\n"),
                 ProcParseError);
}

TEST(ProcStat, ReadsTheAggregateLine) {
    const auto t = parse_proc_stat(kStat);
    EXPECT_EQ(t.user, 100u);
    EXPECT_EQ(t.nice, 20u);
    EXPECT_EQ(t.system, 30u);
    EXPECT_EQ(t.idle, 400u);
    EXPECT_EQ(t.iowait, 50u);
    EXPECT_EQ(t.irq, 6u);
    EXPECT_EQ(t.softirq, 7u);
    EXPECT_EQ(t.steal, 8u);
}

TEST(ProcStat, MalformedInputIsAClearError) {
    EXPECT_THROW(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n"), ProcParseError); // no aggregate
    EXPECT_THROW(parse_proc_stat("cpu 1 2 3 4\n"), ProcParseError);          // too short
    EXPECT_THROW(parse_proc_stat("cpu 1 2 three 4 5 6 7 8\n"), ProcParseError);
    EXPECT_THROW(parse_proc_stat(""), ProcParseError);
    try {
        parse_proc_stat("cpu 1 2 3\n");
    } catch (const ProcParseError& e) {
        EXPECT_NE(std::string(e.what()).find("/proc/stat"), std::string::npos);
    }
}

TEST(CpuUsage, UtilizationAndStealOverAnInterval) {
    const CpuTimes a{100, 0, 0, 100, 0, 0, 0, 0};
    // +60 user, +10 system, +20 idle, +10 iowait? no: +5 iowait, +5 steal = 100 ticks
    const CpuTimes b{160, 0, 10, 120, 5, 0, 0, 5};
    const auto u = cpu_usage(a, b);
    ASSERT_TRUE(u);
    EXPECT_DOUBLE_EQ(u->utilization, 0.70);
    EXPECT_DOUBLE_EQ(u->steal, 0.05);
}

TEST(CpuUsage, NoTimePassedIsNoSample) {
    const CpuTimes a{1, 2, 3, 4, 5, 6, 7, 8};
    EXPECT_FALSE(cpu_usage(a, a));
}

TEST(CpuUsage, ACounterGoingBackwardsDoesNotWrap) {
    // iowait can decrease on NO_HZ kernels.
    const CpuTimes a{0, 0, 0, 0, 100, 0, 0, 0};
    const CpuTimes b{50, 0, 0, 50, 90, 0, 0, 0};
    const auto u = cpu_usage(a, b);
    ASSERT_TRUE(u);
    EXPECT_DOUBLE_EQ(u->utilization, 0.5);
    EXPECT_GE(u->utilization, 0.0);
    EXPECT_LE(u->utilization, 1.0);
}

TEST(Packets, DeltaAndReset) {
    EXPECT_EQ(packets_between({10, 20}, {15, 30}), std::optional<std::uint64_t>(15));
    EXPECT_FALSE(packets_between({10, 20}, {5, 30}));
}

TEST(ReadProcFile, MissingFileSaysWhatToDo) {
    try {
        read_proc_file("/nonexistent/proc/stat");
        FAIL();
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("mount -t proc"), std::string::npos);
    }
}

TEST(ReadProcFile, RealProcParses) {
    EXPECT_NO_THROW(parse_net_dev(read_proc_file("/proc/net/dev")));
    EXPECT_NO_THROW(parse_proc_stat(read_proc_file("/proc/stat")));
}

} // namespace
} // namespace plwlm
