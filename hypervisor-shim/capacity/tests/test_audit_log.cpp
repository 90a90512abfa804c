// The JSON-lines audit log: format, append-only writing, reading back.
#include <cmath>
#include <fcntl.h>
#include <regex>

#include <gtest/gtest.h>

#include "audit_log.hpp"
#include "fake_cgroup.hpp"

namespace partlink::capacity {
namespace {

using testing::read_file;
using testing::TempDir;
using testing::write_file;
using namespace std::chrono;

AuditRecord sample(std::string target = "vm2", double cpu = 1.5) {
    AuditRecord record;
    record.time = system_clock::time_point(seconds(1764062581) + microseconds(123456));
    record.from = "vm1";
    record.target = std::move(target);
    record.cpu = cpu;
    record.result = AuditResult::clamped;
    record.reason = "1.5 CPU is above vm2's maximum, 1 CPU";
    record.changes = {{"vm2", CpuAmount{66666}, CpuAmount{100000}},
                      {"vm3", CpuAmount{66667}, CpuAmount{33333}}};
    PartitionCheck check;
    check.partition = "vm2";
    check.expected_cpus = 1.0;
    check.read_back_cpus = 1.0;
    check.matches = true;
    check.periods = 3;
    check.throttled_periods = 2;
    check.throttled_usec = 41'000;
    check.usage_usec = 250'000;
    check.usage_approximate = true;
    record.verification = Verification{true, 300, {check}};
    return record;
}

TEST(Iso8601, FormatsUtcWithMicroseconds) {
    EXPECT_EQ(format_iso8601(sample().time), "2025-11-25T09:23:01.123456Z");
    EXPECT_EQ(format_iso8601(system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
    const auto parsed = parse_iso8601("2025-11-25T09:23:01.123456Z");
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, sample().time);
    EXPECT_FALSE(parse_iso8601("2025-11-25 09:23:01"));
    EXPECT_FALSE(parse_iso8601("2025-11-25T09:23:01.123456Zjunk"));
}

TEST(AuditRecordJson, HasEveryField) {
    const auto json = to_json(sample());
    EXPECT_EQ(json["time"], "2025-11-25T09:23:01.123456Z");
    EXPECT_EQ(json["from"], "vm1");
    EXPECT_EQ(json["directive"]["target"], "vm2");
    EXPECT_EQ(json["directive"]["cpu"], 1.5);
    EXPECT_EQ(json["result"], "clamped");
    EXPECT_EQ(json["reason"], "1.5 CPU is above vm2's maximum, 1 CPU");
    EXPECT_EQ(json["changes"][0]["before"], 0.66666);
    EXPECT_EQ(json["changes"][0]["after"], 1.0);
    EXPECT_EQ(json["verification"]["ok"], true);
    EXPECT_EQ(json["verification"]["partitions"][0]["throttled_periods"], 2);
    EXPECT_EQ(json["verification"]["partitions"][0]["usage_approximate"], true);
}

TEST(AuditRecordJson, DonorOnlyWhenNamed) {
    auto json = to_json(sample());
    EXPECT_FALSE(json["directive"].contains("donor"));
    EXPECT_FALSE(audit_record_from_json(json).donor);
    auto record = sample();
    record.donor = "vm3";
    json = to_json(record);
    EXPECT_EQ(json["directive"].dump(), R"({"target":"vm2","cpu":1.5,"donor":"vm3"})");
    EXPECT_EQ(audit_record_from_json(json).donor, "vm3");
    // Garbage bytes in a donor name do not break the line.
    record.donor = std::string("v\xff\x01");
    TempDir tmp;
    AuditLog log(tmp.path() / "audit.jsonl");
    log.append(record);
    const auto contents = read_audit_log(tmp.path() / "audit.jsonl");
    ASSERT_EQ(contents.records.size(), 1u);
    EXPECT_TRUE(contents.records[0].donor);
}

TEST(AuditRecordJson, NonFiniteCpuIsKeptAsText) {
    AuditRecord record = sample("vm2", std::nan(""));
    record.result = AuditResult::refused;
    record.verification.reset();
    auto json = to_json(record);
    EXPECT_EQ(json["directive"]["cpu"], "nan");
    EXPECT_TRUE(json["verification"].is_null());
    EXPECT_TRUE(std::isnan(audit_record_from_json(json).cpu));
    record.cpu = -INFINITY;
    EXPECT_EQ(to_json(record)["directive"]["cpu"], "-inf");
    EXPECT_EQ(audit_record_from_json(to_json(record)).cpu, -INFINITY);
}

TEST(AuditRecordJson, AMemoryDirectiveHasMibAndItsBalloon) {
    AuditRecord record = sample();
    record.cpu = std::nan("");
    record.memory_mib = 384;
    record.result = AuditResult::applied;
    record.reason.clear();
    record.changes.clear();
    record.verification.reset();
    record.balloon = BalloonCheck{512, 384, 400, false, 2000, ""};
    const auto json = to_json(record);
    EXPECT_EQ(json["directive"], (nlohmann::ordered_json{{"target", "vm2"}, {"memory_mib", 384}}));
    EXPECT_EQ(json["memory"].dump(), R"({"before_mib":512,"target_mib":384,"actual_mib":400,)"
                                     R"("reached":false,"window_ms":2000})");
    const AuditRecord back = audit_record_from_json(nlohmann::json::parse(json.dump()));
    EXPECT_EQ(back.memory_mib, 384);
    EXPECT_TRUE(std::isnan(back.cpu));
    ASSERT_TRUE(back.balloon);
    EXPECT_EQ(back.balloon->before_mib, 512u);
    EXPECT_EQ(back.balloon->target_mib, 384u);
    EXPECT_EQ(back.balloon->actual_mib, 400u);
    EXPECT_FALSE(back.balloon->reached);

    // A balloon that could not be reached: unknown sizes, the error kept.
    record.result = AuditResult::failed;
    record.balloon = BalloonCheck{std::nullopt, 384, std::nullopt, false, 0, "QMP timed out"};
    const auto failed = to_json(record);
    EXPECT_TRUE(failed["memory"]["before_mib"].is_null());
    EXPECT_EQ(failed["memory"]["error"], "QMP timed out");
    EXPECT_EQ(audit_record_from_json(nlohmann::json::parse(failed.dump())).balloon->error,
              "QMP timed out");
    // CPU records have no memory object.
    EXPECT_FALSE(to_json(sample()).contains("memory"));
}

TEST(AuditLogFile, AppendsLinesAndReadsThemBack) {
    TempDir tmp;
    const auto file = tmp.path() / "wlm-audit.jsonl";
    {
        AuditLog log(file);
        log.append(sample());
    }
    {
        // Reopening appends; nothing earlier is rewritten.
        AuditLog log(file);
        auto second = sample("vm3", 0.5);
        second.result = AuditResult::refused;
        second.verification.reset();
        log.append(second);
    }
    const auto text = read_file(file);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2);
    EXPECT_TRUE(std::regex_search(
        text, std::regex(R"(^\{"time":"2025-11-25T09:23:01.123456Z","from":"vm1","directive":)")));

    const auto contents = read_audit_log(file);
    EXPECT_TRUE(contents.problems.empty());
    ASSERT_EQ(contents.records.size(), 2u);
    const auto& first = contents.records[0];
    EXPECT_EQ(first.time, sample().time);
    EXPECT_EQ(first.from, "vm1");
    EXPECT_EQ(first.target, "vm2");
    EXPECT_EQ(first.cpu, 1.5);
    EXPECT_EQ(first.result, AuditResult::clamped);
    EXPECT_EQ(first.changes, sample().changes);
    ASSERT_TRUE(first.verification);
    EXPECT_EQ(first.verification->partitions[0].throttled_usec, 41'000);
    EXPECT_EQ(first.verification->partitions[0].usage_usec, 250'000);
    EXPECT_EQ(contents.records[1].target, "vm3");
    EXPECT_EQ(contents.records[1].result, AuditResult::refused);
    EXPECT_FALSE(contents.records[1].verification);
}

TEST(AuditLogFile, DescriptorIsAppendOnly) {
    TempDir tmp;
    const auto file = tmp.path() / "audit.jsonl";
    write_file(file, "earlier line kept as is\n");
    AuditLog log(file);
    log.append(sample());
    EXPECT_EQ(read_file(file).rfind("earlier line kept as is\n", 0), 0u);
}

TEST(AuditLogFile, GarbageTargetBytesDoNotBreakTheLine) {
    TempDir tmp;
    const auto file = tmp.path() / "audit.jsonl";
    AuditLog log(file);
    auto record = sample(std::string("vm\xff\xfe\0", 5), 1);
    record.result = AuditResult::refused;
    EXPECT_NO_THROW(log.append(record));
    const auto contents = read_audit_log(file);
    ASSERT_EQ(contents.records.size(), 1u);
    EXPECT_EQ(contents.records[0].result, AuditResult::refused);
}

TEST(AuditLogFile, TornAndForeignLinesAreReportedNotFatal) {
    TempDir tmp;
    const auto file = tmp.path() / "audit.jsonl";
    {
        AuditLog log(file);
        log.append(sample());
    }
    {
        std::ofstream out(file, std::ios::app);
        out << "{\"not\": \"a record\"}\n\n";
        out << R"({"time":"2025-11-25T09:23:01.123456Z","from":"vm1","directive":{"tar)";
    }
    const auto contents = read_audit_log(file);
    ASSERT_EQ(contents.records.size(), 1u);
    ASSERT_EQ(contents.problems.size(), 2u);
    EXPECT_EQ(contents.problems[0].rfind("line 2: ", 0), 0u) << contents.problems[0];
    EXPECT_EQ(contents.problems[1].rfind("line 4: ", 0), 0u) << contents.problems[1];
}

TEST(AuditLogFile, ErrorsSayWhatToCheck) {
    TempDir tmp;
    EXPECT_THROW(AuditLog(tmp.path() / "no/such/dir/audit.jsonl"), Error);
    try {
        read_audit_log(tmp.path() / "missing.jsonl");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no directive has been logged yet"),
                  std::string::npos);
    }
}

} // namespace
} // namespace partlink::capacity
