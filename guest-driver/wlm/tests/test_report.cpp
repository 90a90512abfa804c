#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "report.hpp"

namespace plwlm {
namespace {

Report sample() {
    Report r;
    r.partition = "vm2";
    r.time = 1732526400.5;
    r.c = 0.41;
    r.t = 0.87;
    r.s = 1.12;
    r.s_trend = 1.10;
    r.r2 = 0.93;
    r.steal = 0.02;
    r.seq = 17;
    return r;
}

Rejection rejected(std::string_view text) {
    const auto result = parse_report(text);
    EXPECT_TRUE(std::holds_alternative<Rejection>(result)) << text;
    if (const auto* r = std::get_if<Rejection>(&result))
        return *r;
    return {RejectReason::bad_json, "accepted"};
}

TEST(Report, RoundTrips) {
    const auto json = to_json(sample());
    const auto result = parse_report(json);
    ASSERT_TRUE(std::holds_alternative<Report>(result)) << json;
    const auto& r = std::get<Report>(result);
    EXPECT_EQ(r.partition, "vm2");
    EXPECT_DOUBLE_EQ(r.time, 1732526400.5);
    EXPECT_DOUBLE_EQ(r.c, 0.41);
    EXPECT_DOUBLE_EQ(r.t, 0.87);
    EXPECT_DOUBLE_EQ(*r.s, 1.12);
    EXPECT_DOUBLE_EQ(*r.s_trend, 1.10);
    EXPECT_DOUBLE_EQ(*r.r2, 0.93);
    EXPECT_DOUBLE_EQ(r.steal, 0.02);
    EXPECT_EQ(r.seq, 17u);
    EXPECT_LE(json.size(), kMaxReportBytes);
}

TEST(Report, UndefinedVelocityIsNull) {
    auto r = sample();
    r.s.reset();
    r.s_trend.reset();
    r.r2.reset();
    const auto json = to_json(r);
    EXPECT_NE(json.find("\"s\":null"), std::string::npos) << json;
    EXPECT_NE(json.find("\"s_trend\":null"), std::string::npos) << json;
    const auto back = parse_report(json);
    ASSERT_TRUE(std::holds_alternative<Report>(back));
    EXPECT_FALSE(std::get<Report>(back).s);
    EXPECT_FALSE(std::get<Report>(back).s_trend);
}

TEST(Report, R2MayBeLeftOut) {
    const auto result = parse_report(R"({"partition":"vm3","time":5,"c":0,"t":0,"s":null,)"
                                     R"("s_trend":null,"steal":0,"seq":0})");
    ASSERT_TRUE(std::holds_alternative<Report>(result));
    EXPECT_FALSE(std::get<Report>(result).r2);
}

TEST(Report, BadJsonIsRejected) {
    for (const char* text : {"", "{", "garbage", "{\"partition\":\"vm2\",}", "\xff\xfe\x00",
                             "{\"a\":1} trailing", "/* comment */ {}", "NaN"})
        EXPECT_EQ(rejected(text).reason, RejectReason::bad_json) << text;
}

TEST(Report, WrongShapesAreRejected) {
    const std::string ok = to_json(sample());
    EXPECT_EQ(rejected("[]").reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected("42").reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected("\"vm2\"").reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected("null").reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected("{}").reason, RejectReason::bad_schema);
    auto with = [&](const std::string& key, const std::string& value) {
        auto j = ok;
        const auto at = j.find("\"" + key + "\":");
        const auto from = at + key.size() + 3;
        const auto to = j.find_first_of(",}", from);
        return j.substr(0, from) + value + j.substr(to);
    };
    EXPECT_EQ(rejected(with("c", "\"0.5\"")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("c", "null")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("c", "[0.5]")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("partition", "7")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("s", "\"fast\"")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("s", "{}")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("seq", "1.5")).reason, RejectReason::bad_schema);
    EXPECT_EQ(rejected(with("seq", "true")).reason, RejectReason::bad_schema);
    // Unknown keys: a report is exactly what the monitor sends.
    EXPECT_EQ(rejected(ok.substr(0, ok.size() - 1) + ",\"cmd\":\"rm\"}").reason,
              RejectReason::bad_schema);
    // Missing keys.
    EXPECT_EQ(rejected(R"({"partition":"vm2","time":1,"c":0,"t":0,"steal":0,"seq":0})").reason,
              RejectReason::bad_schema);
}

TEST(Report, AbsurdValuesAreRejected) {
    const std::string ok = to_json(sample());
    auto with = [&](const std::string& key, const std::string& value) {
        auto j = ok;
        const auto at = j.find("\"" + key + "\":");
        const auto from = at + key.size() + 3;
        const auto to = j.find_first_of(",}", from);
        return j.substr(0, from) + value + j.substr(to);
    };
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"c", "1.5"},
             {"c", "-0.1"},
             {"t", "2"},
             {"steal", "-1"},
             {"steal", "1e308"},
             {"s", "1e300"},
             {"s", "-1e7"},
             {"s_trend", "1e7"},
             {"r2", "1.5"},
             {"time", "-5"},
             {"time", "1e300"},
             {"seq", "-1"},
             {"seq", "18446744073709551615"},
             {"partition", "\"\""},
             {"partition", "\"vm2; reboot\""},
             {"partition", "\"../../etc\""},
             {"partition", "\"" + std::string(17, 'a') + "\""},
         })
        EXPECT_EQ(rejected(with(key, value)).reason, RejectReason::bad_value) << key << value;
    // Numbers too large for a double: refused either by the parser or by
    // the range check, never accepted as infinity.
    const auto huge = rejected(with("c", "1e999")).reason;
    EXPECT_TRUE(huge == RejectReason::bad_json || huge == RejectReason::bad_value);
}

TEST(Report, OversizeIsRejectedUnread) {
    const std::string big = "{\"partition\":\"" + std::string(2000, 'a') + "\"}";
    EXPECT_EQ(rejected(big).reason, RejectReason::oversize);
}

TEST(Report, DeepNestingDoesNotCrash) {
    std::string deep(kMaxReportBytes / 2, '[');
    deep += std::string(kMaxReportBytes / 2, ']');
    const auto r = rejected(deep);
    EXPECT_EQ(r.reason, RejectReason::bad_schema);
}

TEST(Report, RandomBytesNeverCrash) {
    std::mt19937 rng(99);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> len(0, 1100);
    const std::string ok = to_json(sample());
    for (int i = 0; i < 3000; ++i) {
        std::string text;
        if (i % 2) {
            text.resize(static_cast<std::size_t>(len(rng)));
            for (auto& ch : text)
                ch = static_cast<char>(byte(rng));
        } else {
            // Mutate a valid report: more likely to get deep into the checks.
            text = ok;
            for (int k = 0; k < 3; ++k)
                text[static_cast<std::size_t>(byte(rng)) % text.size()] =
                    static_cast<char>(byte(rng));
        }
        const auto result = parse_report(text);
        if (const auto* r = std::get_if<Report>(&result)) {
            EXPECT_TRUE(valid_partition_name(r->partition));
            EXPECT_TRUE(r->c >= 0 && r->c <= 1);
            EXPECT_TRUE(std::isfinite(r->time));
        }
    }
}

TEST(Report, CountersCountByReason) {
    ReportCounters counters;
    counters.count(parse_report(to_json(sample())));
    counters.count(parse_report("nope"));
    counters.count(parse_report("[]"));
    counters.count(parse_report("{]"));
    EXPECT_EQ(counters.accepted(), 1u);
    EXPECT_EQ(counters.rejected(), 3u);
    EXPECT_EQ(counters.rejected(RejectReason::bad_json), 2u);
    EXPECT_EQ(counters.rejected(RejectReason::bad_schema), 1u);
}

TEST(Report, PartitionNames) {
    EXPECT_TRUE(valid_partition_name("vm1"));
    EXPECT_TRUE(valid_partition_name("db-2.prod_a"));
    EXPECT_FALSE(valid_partition_name(""));
    EXPECT_FALSE(valid_partition_name("vm 1"));
    EXPECT_FALSE(valid_partition_name("vm/1"));
    EXPECT_FALSE(valid_partition_name(std::string("vm\0", 3)));
    // As long as the hypervisor mailbox carries, no longer.
    EXPECT_TRUE(valid_partition_name(std::string(16, 'a')));
    EXPECT_FALSE(valid_partition_name(std::string(17, 'a')));
}

} // namespace
} // namespace plwlm
