// `partlink wlm log`: the capacity audit log as a table and as JSON lines.
#include <cmath>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "run/wlm_logs.hpp"

namespace partlink {
namespace {

namespace cap = partlink::capacity;

cap::AuditRecord record(const char* time, const char* target, double cpu, cap::AuditResult result,
                        std::vector<cap::CapChange> changes, const char* reason = "") {
    cap::AuditRecord r;
    r.time = *cap::parse_iso8601(time);
    r.from = "vm1";
    r.target = target;
    r.cpu = cpu;
    r.result = result;
    r.reason = reason;
    r.changes = std::move(changes);
    return r;
}

std::vector<cap::AuditRecord> sample() {
    std::vector<cap::AuditRecord> records;
    records.push_back(record("2026-11-25T09:23:01.123456Z", "vm2", 1.5, cap::AuditResult::clamped,
                             {{"vm2", {66'666}, {100'000}}, {"vm3", {66'667}, {33'333}}},
                             "vm2's max is 1 CPU"));
    records.back().verification = cap::Verification{true, 300, {}};
    records.push_back(record("2026-11-25T09:24:00.000000Z", "vm3", NAN, cap::AuditResult::refused,
                             {}, "cpu is not a finite number"));
    records.push_back(record("2026-11-25T09:25:00.500000Z", "vm3", 0.5, cap::AuditResult::applied,
                             {{"vm3", {33'333}, {50'000}}, {"vm2", {100'000}, {83'333}}}));
    records.back().donor = "vm2";
    records.back().verification = cap::Verification{false, 300, {}};
    return records;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

TEST(AuditTable, OneRowPerDirectiveUnderAHeader) {
    const auto lines = lines_of(render_audit_table(sample()));
    ASSERT_EQ(lines.size(), 4u);
    for (const char* column : {"TIME", "FROM", "DIRECTIVE", "RESULT", "CHANGES", "CHECK", "REASON"})
        EXPECT_NE(lines[0].find(column), std::string::npos) << column;
    // Columns line up: every row's RESULT starts where the header's does.
    const auto result_at = lines[0].find("RESULT");
    EXPECT_EQ(lines[1].find("clamped"), result_at) << lines[1];
    EXPECT_EQ(lines[2].find("refused"), result_at) << lines[2];
    EXPECT_EQ(lines[3].find("applied"), result_at) << lines[3];
}

TEST(AuditTable, RowsSayWhatHappened) {
    const auto lines = lines_of(render_audit_table(sample()));
    EXPECT_EQ(lines[1].rfind("2026-11-25T09:23:01.123456Z  vm1", 0), 0u) << lines[1];
    EXPECT_NE(lines[1].find("vm2 cpu 1.5"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("vm2 0.66666->1, vm3 0.66667->0.33333"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find(" ok "), std::string::npos) << lines[1];
    EXPECT_EQ(lines[1].substr(lines[1].size() - 18), "vm2's max is 1 CPU");
    // A refused directive changed nothing and was not verified.
    EXPECT_NE(lines[2].find("vm3 cpu nan"), std::string::npos) << lines[2];
    EXPECT_NE(lines[2].find("refused  -"), std::string::npos) << lines[2];
    EXPECT_NE(lines[2].find("cpu is not a finite number"), std::string::npos) << lines[2];
    // A donor is shown; a failed verification stands out; no reason is "-".
    EXPECT_NE(lines[3].find("vm3 cpu 0.5 donor vm2"), std::string::npos) << lines[3];
    EXPECT_NE(lines[3].find("FAILED"), std::string::npos) << lines[3];
    EXPECT_EQ(lines[3].back(), '-') << lines[3];
    for (const auto& line : lines)
        EXPECT_NE(line.back(), ' ') << "no trailing blanks: '" << line << "'";
}

TEST(AuditTable, MemoryDirectivesShowTheBalloon) {
    auto moved = record("2026-11-25T09:26:00.000000Z", "vm2", NAN, cap::AuditResult::applied, {});
    moved.memory_mib = 384;
    moved.balloon = cap::BalloonCheck{512, 384, 384, true, 700, ""};
    auto slow = moved;
    slow.balloon = cap::BalloonCheck{512, 256, 400, false, 2000, ""};
    slow.memory_mib = 256;
    const auto lines = lines_of(render_audit_table({moved, slow}));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_NE(lines[1].find("vm2 memory 384 MiB"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find("vm2 512->384 MiB"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find(" ok "), std::string::npos) << lines[1];
    EXPECT_NE(lines[2].find("vm2 512->256 MiB (at 400)"), std::string::npos) << lines[2];
    EXPECT_NE(lines[2].find(" moving "), std::string::npos) << lines[2];
}

TEST(AuditTable, NoRecordsIsJustTheHeader) {
    EXPECT_EQ(lines_of(render_audit_table({})).size(), 1u);
}

TEST(AuditJsonLines, OneRecordPerLineAsLogged) {
    const auto records = sample();
    const auto lines = lines_of(render_audit_json_lines(records));
    ASSERT_EQ(lines.size(), 3u);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto doc = nlohmann::json::parse(lines[i]);
        EXPECT_EQ(doc["from"], "vm1");
        EXPECT_EQ(doc["directive"]["target"], records[i].target);
        EXPECT_EQ(doc["result"], std::string(cap::to_string(records[i].result)));
        // And back: what `wlm log --json` prints reads as the same record.
        const auto back = cap::audit_record_from_json(doc);
        EXPECT_EQ(back.changes, records[i].changes);
        EXPECT_EQ(back.time, records[i].time);
    }
    EXPECT_EQ(nlohmann::json::parse(lines[1])["directive"]["cpu"], "nan");
    EXPECT_EQ(render_audit_json_lines({}), "");
}

TEST(ChartText, VelocityAndState) {
    cap::ChartRecord r;
    r.partition = "vm2";
    r.state = cap::ChartState::in_control;
    EXPECT_EQ(velocity_text(std::nullopt), "-");
    EXPECT_EQ(velocity_text(r), "-"); // S undefined
    r.velocity = 1.123456;
    EXPECT_EQ(velocity_text(r), "1.12");
    EXPECT_EQ(chart_state_text(r), "in-control");
}

} // namespace
} // namespace partlink
