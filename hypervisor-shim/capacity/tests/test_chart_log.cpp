// The WLM chart log: one JSON line per REPORT, read back whole or, for
// `partlink status`, the last record of each partition from the file's tail.
#include <fstream>

#include <gtest/gtest.h>

#include "audit_log.hpp"
#include "chart_log.hpp"
#include "fake_cgroup.hpp"

namespace partlink::capacity {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;
using namespace std::chrono;

ChartRecord sample(const std::string& partition = "vm2", double velocity = 1.12) {
    ChartRecord r;
    r.time = system_clock::time_point(seconds(1764062581) + microseconds(123456));
    r.from = "vm1";
    r.partition = partition;
    r.velocity = velocity;
    r.trend = 1.3;
    r.ewma = -0.2;
    r.lower_limit = -0.15;
    r.upper_limit = 0.15;
    r.cpu = 0.43;
    r.state = ChartState::low;
    return r;
}

TEST(ChartRecordJson, AsDocumented) {
    EXPECT_EQ(to_json(sample()).dump(),
              R"({"time":"2025-11-25T09:23:01.123456Z","from":"vm1","partition":"vm2",)"
              R"("velocity":1.12,"trend":1.3,"ewma":-0.2,"lower_limit":-0.15,)"
              R"("upper_limit":0.15,"cpu":0.43,"state":"low"})");
    auto undefined = sample();
    undefined.velocity.reset();
    undefined.lower_limit = std::nan("");
    undefined.state = ChartState::warming_up;
    const auto json = to_json(undefined);
    EXPECT_TRUE(json["velocity"].is_null());
    EXPECT_TRUE(json["lower_limit"].is_null()) << "not finite: null";
    EXPECT_EQ(json["state"], "warming-up");
}

TEST(ChartRecordJson, StatesRoundTrip) {
    for (const auto state :
         {ChartState::warming_up, ChartState::in_control, ChartState::low, ChartState::high})
        EXPECT_EQ(chart_state_from(to_string(state)), state);
    EXPECT_FALSE(chart_state_from("sideways"));
    EXPECT_FALSE(chart_state_from(""));
}

TEST(ChartLogFile, RoundTrip) {
    TempDir tmp;
    const auto file = tmp.path() / "wlm-chart.jsonl";
    auto second = sample("vm3", -0.5);
    second.velocity.reset();
    second.upper_limit.reset();
    second.state = ChartState::high;
    {
        ChartLog log(file);
        log.append(sample());
    }
    {
        ChartLog log(file); // appends
        log.append(second);
    }
    const auto contents = read_chart_log(file);
    EXPECT_TRUE(contents.problems.empty());
    ASSERT_EQ(contents.records.size(), 2u);
    const auto& a = contents.records[0];
    EXPECT_EQ(a.time, sample().time);
    EXPECT_EQ(a.from, "vm1");
    EXPECT_EQ(a.partition, "vm2");
    EXPECT_EQ(a.velocity, 1.12);
    EXPECT_EQ(a.trend, 1.3);
    EXPECT_EQ(a.ewma, -0.2);
    EXPECT_EQ(a.lower_limit, -0.15);
    EXPECT_EQ(a.upper_limit, 0.15);
    EXPECT_EQ(a.cpu, 0.43);
    EXPECT_EQ(a.state, ChartState::low);
    const auto& b = contents.records[1];
    EXPECT_EQ(b.partition, "vm3");
    EXPECT_FALSE(b.velocity);
    EXPECT_FALSE(b.upper_limit);
    EXPECT_EQ(b.state, ChartState::high);
}

TEST(ChartLogFile, MissingFileReadsAsNone) {
    TempDir tmp;
    EXPECT_TRUE(read_chart_log(tmp.path() / "none.jsonl").records.empty());
    EXPECT_TRUE(latest_chart_records(tmp.path() / "none.jsonl").empty());
}

TEST(ChartLogFile, BadLinesAreProblemsNotFatal) {
    TempDir tmp;
    const auto file = tmp.path() / "wlm-chart.jsonl";
    const auto good = to_json(sample()).dump();
    auto bad_state = to_json(sample());
    bad_state["state"] = "sideways";
    auto bad_number = to_json(sample());
    bad_number["cpu"] = "high";
    write_file(file, good + "\n\n{\"time\":\n" + bad_state.dump() + "\n" + bad_number.dump() +
                         "\n[1,2]\n" + good + "\n{\"time\":\"2025-11-25T09:2");
    const auto contents = read_chart_log(file);
    EXPECT_EQ(contents.records.size(), 2u);
    ASSERT_EQ(contents.problems.size(), 5u);
    EXPECT_EQ(contents.problems[0].rfind("line 3: ", 0), 0u) << contents.problems[0];
    EXPECT_NE(contents.problems[1].find("unknown chart state 'sideways'"), std::string::npos);
    EXPECT_EQ(contents.problems[4].rfind("line 8: ", 0), 0u) << contents.problems[4];
}

TEST(ChartLogFile, UnopenableSaysWhatToCheck) {
    TempDir tmp;
    try {
        ChartLog log(tmp.path() / "no" / "such" / "chart.jsonl");
        FAIL() << "opened";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("check that its directory exists"), std::string::npos)
            << e.what();
    }
}

// The last record of each partition, from lines of `length` bytes each.
class LatestChartRecords : public ::testing::Test {
protected:
    void SetUp() override {
        ChartLog log(file);
        int n = 0;
        for (int round = 0; round < 5; ++round)
            for (const char* name : {"vm1", "vm2", "vm3"}) {
                auto r = sample(name, 10 + ++n); // two digits: lines of one length
                r.time += seconds(n);
                log.append(r);
            }
        text = read_file(file);
        line_length = text.find('\n') + 1;
        ASSERT_EQ(text.size(), 15 * line_length) << "lines of one length";
    }

    TempDir tmp;
    std::filesystem::path file = tmp.path() / "wlm-chart.jsonl";
    std::string text;
    std::size_t line_length = 0;
};

TEST_F(LatestChartRecords, WholeFile) {
    const auto latest = latest_chart_records(file);
    ASSERT_EQ(latest.size(), 3u);
    EXPECT_EQ(latest.at("vm1").velocity, 23);
    EXPECT_EQ(latest.at("vm2").velocity, 24);
    EXPECT_EQ(latest.at("vm3").velocity, 25);
}

TEST_F(LatestChartRecords, ATailCutMidLineSkipsTheBrokenLine) {
    // The last 3 lines and part of the one before.
    const auto latest = latest_chart_records(file, 3 * line_length + 10);
    ASSERT_EQ(latest.size(), 3u);
    EXPECT_EQ(latest.at("vm1").velocity, 23);
    EXPECT_EQ(latest.at("vm3").velocity, 25);
    // Only the last 2 lines and a piece: vm1 is not in the tail.
    const auto fewer = latest_chart_records(file, 2 * line_length + 10);
    EXPECT_EQ(fewer.size(), 2u);
    EXPECT_FALSE(fewer.contains("vm1"));
}

TEST_F(LatestChartRecords, ATailCutAtALineStartKeepsThatLine) {
    // Exactly the last 3 lines: the first of them is whole.
    const auto latest = latest_chart_records(file, 3 * line_length);
    ASSERT_EQ(latest.size(), 3u) << "the line at the cut was dropped";
    EXPECT_EQ(latest.at("vm1").velocity, 23);
    const auto one = latest_chart_records(file, line_length);
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one.at("vm3").velocity, 25);
}

TEST_F(LatestChartRecords, ATailShorterThanALineHasNothing) {
    EXPECT_TRUE(latest_chart_records(file, line_length - 1).empty());
    EXPECT_TRUE(latest_chart_records(file, 0).empty());
}

} // namespace
} // namespace partlink::capacity
