#include <cstring>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "mailbox.hpp"

namespace plwlm {
namespace {

ChartReport named(const std::string& target) {
    ChartReport r;
    r.target = target;
    return r;
}

constexpr std::int64_t kUndefined = PARTLINK_MBOX_UNDEFINED;

TEST(Encode, SetCpuLayoutIsLittleEndianAtTheSpecOffsets) {
    const auto b = encode(Directive{"vm2", 1.5, std::string("vm3")});
    EXPECT_EQ(b.size(), 128u);
    // op = 1 at 0, flags = 0 at 4.
    EXPECT_EQ(b[0], 1);
    EXPECT_EQ(b[1] | b[2] | b[3] | b[4] | b[5] | b[6] | b[7], 0);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&b[8]), 3), "vm2");
    for (int i = 11; i < 24; ++i)
        EXPECT_EQ(b[i], 0) << "target padding at " << i;
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&b[24]), 3), "vm3");
    // 1500000 = 0x16e360, little-endian at 40.
    EXPECT_EQ(b[40], 0x60);
    EXPECT_EQ(b[41], 0xe3);
    EXPECT_EQ(b[42], 0x16);
    for (int i = 43; i < 128; ++i)
        EXPECT_EQ(b[i], 0) << "byte " << i;
}

TEST(Encode, SetCpuRoundTrip) {
    const auto f = decode_request(encode(Directive{"vm2", 0.3333334, std::nullopt}));
    EXPECT_EQ(f.op, static_cast<std::uint32_t>(PARTLINK_MBOX_OP_SET_CPU));
    EXPECT_EQ(f.flags, 0u);
    EXPECT_EQ(f.target, "vm2");
    EXPECT_EQ(f.donor, "");
    EXPECT_EQ(f.value, 333333); // rounded to the nearest millionth
    EXPECT_EQ(f.velocity, 0);
    EXPECT_EQ(f.chart_state, 0u);
    EXPECT_EQ(f.reserved, 0u);
    EXPECT_TRUE(f.pad_zero);
    EXPECT_EQ(decode_request(encode(Directive{"vm2", 0.0000005, std::nullopt})).value, 1);
    EXPECT_EQ(decode_request(encode(Directive{"vm2", 1024, std::nullopt})).value, 1024000000);
}

TEST(Encode, NamesOfSixteenBytesFillTheFieldWithoutNul) {
    const std::string sixteen = "abcdefghijklmnop";
    const auto b = encode(Directive{sixteen, 1, std::string("0123456789abcdef")});
    EXPECT_EQ(std::memcmp(&b[8], sixteen.data(), 16), 0);
    EXPECT_EQ(std::memcmp(&b[24], "0123456789abcdef", 16), 0);
    const auto f = decode_request(b);
    EXPECT_EQ(f.target, sixteen);
    EXPECT_EQ(f.donor, "0123456789abcdef");
    EXPECT_EQ(f.value, 1000000);
}

TEST(Encode, NamesLongerThanSixteenAreUsageErrors) {
    const std::string seventeen = "abcdefghijklmnopq";
    try {
        encode(Directive{seventeen, 1, std::nullopt});
        FAIL();
    } catch (const UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("1-16"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(seventeen), std::string::npos) << e.what();
    }
    EXPECT_THROW(encode(Directive{"vm2", 1, seventeen}), UsageError);
    EXPECT_THROW(encode(MemoryDirective{seventeen, 512}), UsageError);
    EXPECT_THROW(encode(named(seventeen)), UsageError);
    EXPECT_THROW(encode(named("vm 2")), UsageError);
    EXPECT_THROW(encode(named("")), UsageError);
}

TEST(Encode, BadDirectivesAreUsageErrors) {
    EXPECT_THROW(encode(Directive{"vm2", 0, std::nullopt}), UsageError);
    EXPECT_THROW(encode(Directive{"vm2", -1, std::nullopt}), UsageError);
    EXPECT_THROW(encode(Directive{"vm2", 2000, std::nullopt}), UsageError);
    EXPECT_THROW(encode(Directive{"vm2", std::numeric_limits<double>::infinity(), std::nullopt}),
                 UsageError);
    // Positive, but below a millionth: it would reach the host as 0.
    EXPECT_THROW(encode(Directive{"vm2", 4e-7, std::nullopt}), UsageError);
    EXPECT_THROW(encode(Directive{"vm2", 1, std::string("vm2")}), UsageError);
    EXPECT_THROW(encode(MemoryDirective{"vm2", 0}), UsageError);
    EXPECT_THROW(encode(MemoryDirective{"vm2", -512}), UsageError);
    EXPECT_THROW(encode(MemoryDirective{"vm2", kMaxDirectiveMib + 1}), UsageError);
}

TEST(Encode, SetMemory) {
    const auto f = decode_request(encode(MemoryDirective{"vm3", 512}));
    EXPECT_EQ(f.op, static_cast<std::uint32_t>(PARTLINK_MBOX_OP_SET_MEMORY));
    EXPECT_EQ(f.target, "vm3");
    EXPECT_EQ(f.donor, "");
    EXPECT_EQ(f.value, 512);
    EXPECT_EQ(f.cpu, 0);
    EXPECT_TRUE(f.pad_zero);
}

// --no-check: what encode() refuses goes to the device as given, for the
// hypervisor to refuse.
TEST(Encode, UncheckedMemoryCarriesAnyValue) {
    for (const std::int64_t mib : {std::int64_t{0}, std::int64_t{-512}, kMaxDirectiveMib + 1}) {
        const auto f = decode_request(encode_unchecked(MemoryDirective{"vm2", mib}));
        EXPECT_EQ(f.op, static_cast<std::uint32_t>(PARTLINK_MBOX_OP_SET_MEMORY));
        EXPECT_EQ(f.value, mib);
    }
}

TEST(Encode, ReportRoundTrip) {
    ChartReport r;
    r.target = "vm2";
    r.velocity = 1.12;
    r.trend = -0.25;
    r.ewma = -0.0000004; // rounds to 0, not to undefined
    r.lower_limit = -0.3;
    r.upper_limit = 0.3;
    r.cpu = 0.864;
    r.state = ChartState::out_of_control_low;
    const auto f = decode_request(encode(r));
    EXPECT_EQ(f.op, static_cast<std::uint32_t>(PARTLINK_MBOX_OP_REPORT));
    EXPECT_EQ(f.target, "vm2");
    EXPECT_EQ(f.donor, "");
    EXPECT_EQ(f.value, 0);
    EXPECT_EQ(f.velocity, 1120000);
    EXPECT_EQ(f.trend, -250000);
    EXPECT_EQ(f.ewma, 0);
    EXPECT_EQ(f.lower_limit, -300000);
    EXPECT_EQ(f.upper_limit, 300000);
    EXPECT_EQ(f.cpu, 864000);
    EXPECT_EQ(f.chart_state, static_cast<std::uint32_t>(PARTLINK_CHART_LOW));
    EXPECT_EQ(f.reserved, 0u);
    EXPECT_TRUE(f.pad_zero);
}

TEST(Encode, ReportAbsentValuesAreUndefined) {
    ChartReport r;
    r.target = "vm2";
    r.cpu = 0.5;
    const auto b = encode(r);
    const auto f = decode_request(b);
    EXPECT_EQ(f.velocity, kUndefined);
    EXPECT_EQ(f.trend, kUndefined);
    EXPECT_EQ(f.ewma, kUndefined);
    EXPECT_EQ(f.lower_limit, kUndefined);
    EXPECT_EQ(f.upper_limit, kUndefined);
    EXPECT_EQ(f.cpu, 500000);
    EXPECT_EQ(f.chart_state, static_cast<std::uint32_t>(PARTLINK_CHART_WARMING_UP));
    // INT64_MIN little-endian: seven zero bytes, then 0x80.
    for (int i = 48; i < 55; ++i)
        EXPECT_EQ(b[i], 0);
    EXPECT_EQ(b[55], 0x80);
}

TEST(Encode, ChartValuesOutOfRangeAreUndefined) {
    EXPECT_EQ(chart_micro(std::nullopt), kUndefined);
    EXPECT_EQ(chart_micro(std::numeric_limits<double>::quiet_NaN()), kUndefined);
    EXPECT_EQ(chart_micro(std::numeric_limits<double>::infinity()), kUndefined);
    EXPECT_EQ(chart_micro(-std::numeric_limits<double>::infinity()), kUndefined);
    EXPECT_EQ(chart_micro(1e13), kUndefined);  // 1e19 millionths: beyond 2^63
    EXPECT_EQ(chart_micro(-1e13), kUndefined); // so INT64_MIN never means a value
    EXPECT_EQ(chart_micro(1e12), 1000000000000000000);
    EXPECT_EQ(chart_micro(-1e12), -1000000000000000000);
    EXPECT_EQ(chart_micro(0.0000015), 2);
}

TEST(Encode, ChartStates) {
    EXPECT_EQ(chart_code(ChartState::warming_up), PARTLINK_CHART_WARMING_UP);
    EXPECT_EQ(chart_code(ChartState::in_control), PARTLINK_CHART_IN_CONTROL);
    EXPECT_EQ(chart_code(ChartState::out_of_control_low), PARTLINK_CHART_LOW);
    EXPECT_EQ(chart_code(ChartState::out_of_control_high), PARTLINK_CHART_HIGH);
}

TEST(Decode, EveryResult) {
    struct Case {
        std::uint32_t code;
        Outcome outcome;
        bool ok;
    };
    for (const auto& c : {Case{PARTLINK_MBOX_APPLIED, Outcome::applied, true},
                          Case{PARTLINK_MBOX_CLAMPED, Outcome::clamped, true},
                          Case{PARTLINK_MBOX_REFUSED, Outcome::refused, false},
                          Case{PARTLINK_MBOX_FAILED, Outcome::failed, false},
                          Case{PARTLINK_MBOX_UNAVAILABLE, Outcome::unavailable, false}}) {
        const auto a = decode(encode_answer(c.code, 750000, "why"), MailboxOp::set_cpu);
        EXPECT_EQ(a.outcome, c.outcome) << c.code;
        EXPECT_EQ(accepted(a), c.ok) << c.code;
        EXPECT_DOUBLE_EQ(a.value, 0.75);
        EXPECT_EQ(a.reason, "why");
    }
    EXPECT_EQ(to_string(Outcome::failed), "failed");
    EXPECT_EQ(to_string(Outcome::unavailable), "unavailable");
}

TEST(Decode, ValueByOperation) {
    EXPECT_DOUBLE_EQ(
        decode(encode_answer(1, 1250000, "at vm2's maximum"), MailboxOp::set_cpu).value, 1.25);
    EXPECT_DOUBLE_EQ(decode(encode_answer(0, 512, ""), MailboxOp::set_memory).value, 512);
    EXPECT_DOUBLE_EQ(decode(encode_answer(0, 77, ""), MailboxOp::report).value, 0);
    // A refusal may carry anything as value: it changed nothing.
    EXPECT_EQ(decode(encode_answer(2, -1, "bad"), MailboxOp::set_cpu).outcome, Outcome::refused);
}

TEST(Decode, LittleEndianBytes) {
    MailboxAnswer b{};
    b[0] = 1;                               // CLAMPED
    b[8] = 0x40, b[9] = 0x42, b[10] = 0x0f; // 1000000
    const auto a = decode(b, MailboxOp::set_cpu);
    EXPECT_EQ(a.outcome, Outcome::clamped);
    EXPECT_DOUBLE_EQ(a.value, 1.0);
    EXPECT_EQ(a.reason, "");
}

TEST(Decode, UnknownResultIsMalformed) {
    for (std::uint32_t code : {5u, 0xffffffffu, 0x100u}) {
        try {
            decode(encode_answer(code, 0, ""), MailboxOp::set_cpu);
            FAIL() << code;
        } catch (const UsageError&) {
            FAIL() << "a bad answer is not the user's mistake";
        } catch (const Error& e) {
            EXPECT_EQ(e.exit_code(), kExitFailure);
            EXPECT_NE(std::string(e.what()).find("unknown result " + std::to_string(code)),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(Decode, AbsurdSettingsAreMalformed) {
    EXPECT_THROW(decode(encode_answer(0, -1000000, ""), MailboxOp::set_cpu), Error);
    EXPECT_THROW(decode(encode_answer(0, 0, ""), MailboxOp::set_cpu), Error);
    EXPECT_THROW(
        decode(encode_answer(1, std::numeric_limits<std::int64_t>::max(), ""), MailboxOp::set_cpu),
        Error);
    EXPECT_THROW(decode(encode_answer(0, -5, ""), MailboxOp::set_memory), Error);
    EXPECT_THROW(decode(encode_answer(0, kMaxDirectiveMib + 1, ""), MailboxOp::set_memory), Error);
}

TEST(Decode, ReasonWithoutNulIsBounded) {
    const std::string full(96, 'r');
    auto b = encode_answer(2, 0, full + "this is beyond the field");
    const auto a = decode(b, MailboxOp::set_cpu);
    EXPECT_EQ(a.reason, full);
    // Nothing after the field leaks in: the answer ends with it.
    EXPECT_EQ(b.size(), 16u + 96u);
}

TEST(Decode, ReasonStopsAtNulAndHidesControlBytes) {
    auto b = encode_answer(3, 0,
                           "cgroup\nwrite\x01"
                           "failed");
    b[16 + 30] = 'x'; // after the NUL padding: ignored
    EXPECT_EQ(decode(b, MailboxOp::set_cpu).reason, "cgroup?write?failed");
    b = encode_answer(3, 0, "abc");
    b[16 + 1] = 0;
    b[16 + 2] = 'z';
    EXPECT_EQ(decode(b, MailboxOp::set_cpu).reason, "a");
    b = encode_answer(3, 0, "caf\xc3\xa9");
    EXPECT_EQ(decode(b, MailboxOp::set_cpu).reason, "caf??");
}

TEST(Decode, ZeroedAnswerIsAnAppliedReport) {
    // What MBOX_ANSWER holds after a reset.
    const auto a = decode(MailboxAnswer{}, MailboxOp::report);
    EXPECT_EQ(a.outcome, Outcome::applied);
    EXPECT_EQ(a.reason, "");
}

} // namespace
} // namespace plwlm
