// The mailbox as partlinkd reads it: every field of the guest's 128 bytes
// checked, random bytes never crash the decoder, answers always terminated.
#include <array>
#include <cstddef>
#include <cstring>
#include <endian.h>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mailbox.hpp"

namespace partlink::daemon {
namespace {

using ::testing::HasSubstr;

using Bytes = std::array<std::uint8_t, sizeof(partlink_mbox_request)>;

static_assert(sizeof(partlink_mbox_request) == PARTLINK_MBOX_REQUEST_SIZE);
static_assert(sizeof(partlink_mbox_answer) == PARTLINK_MBOX_ANSWER_SIZE);

// A request as a guest writes it: little-endian fields.
class Request {
public:
    explicit Request(std::uint32_t op, const std::string& target = "vm2") {
        set32(offsetof(partlink_mbox_request, op), op);
        name(offsetof(partlink_mbox_request, target), target);
    }
    Request& set32(std::size_t offset, std::uint32_t value) {
        value = htole32(value);
        std::memcpy(bytes.data() + offset, &value, sizeof value);
        return *this;
    }
    Request& set64(std::size_t offset, std::int64_t value) {
        auto raw = htole64(static_cast<std::uint64_t>(value));
        std::memcpy(bytes.data() + offset, &raw, sizeof raw);
        return *this;
    }
    // Up to 16 bytes, the rest zero.
    Request& name(std::size_t offset, const std::string& text) {
        std::memset(bytes.data() + offset, 0, PARTLINK_NAME_LEN);
        std::memcpy(bytes.data() + offset, text.data(), std::min<std::size_t>(text.size(), 16));
        return *this;
    }
    Request& donor(const std::string& text) {
        return name(offsetof(partlink_mbox_request, donor), text);
    }
    Request& value(std::int64_t v) { return set64(offsetof(partlink_mbox_request, value), v); }
    Request& chart(std::int64_t velocity, std::int64_t trend, std::int64_t ewma, std::int64_t lower,
                   std::int64_t upper, std::int64_t cpu, std::uint32_t state) {
        set64(offsetof(partlink_mbox_request, velocity), velocity);
        set64(offsetof(partlink_mbox_request, trend), trend);
        set64(offsetof(partlink_mbox_request, ewma), ewma);
        set64(offsetof(partlink_mbox_request, lower_limit), lower);
        set64(offsetof(partlink_mbox_request, upper_limit), upper);
        set64(offsetof(partlink_mbox_request, cpu), cpu);
        return set32(offsetof(partlink_mbox_request, chart_state), state);
    }
    MailboxRequest decode() const { return decode_request(bytes); }
    std::string error() const {
        try {
            decode();
        } catch (const MalformedRequest& e) {
            return e.what();
        }
        return "(decoded)";
    }

    Bytes bytes{};
};

Request set_cpu(const std::string& target, std::int64_t micro) {
    return Request(PARTLINK_MBOX_OP_SET_CPU, target).value(micro);
}

Request report(const std::string& target = "vm2") {
    return Request(PARTLINK_MBOX_OP_REPORT, target)
        .chart(1'120'000, 1'300'000, -200'000, -150'000, 150'000, 430'000, PARTLINK_CHART_LOW);
}

TEST(DecodeRequest, SetCpu) {
    const auto decoded = set_cpu("vm2", 1'500'000).decode();
    const auto* cpu = std::get_if<SetCpu>(&decoded);
    ASSERT_NE(cpu, nullptr);
    EXPECT_EQ(cpu->target, "vm2");
    EXPECT_FALSE(cpu->donor);
    EXPECT_EQ(cpu->micro_cpus, 1'500'000);
}

TEST(DecodeRequest, SetCpuWithADonor) {
    const auto decoded = set_cpu("vm2", 1'000'000).donor("vm3").decode();
    const auto& cpu = std::get<SetCpu>(decoded);
    ASSERT_TRUE(cpu.donor);
    EXPECT_EQ(*cpu.donor, "vm3");
}

TEST(DecodeRequest, SetCpuValuesAreLeftToThePolicy) {
    for (const std::int64_t value :
         {std::int64_t{0}, std::int64_t{-1}, std::numeric_limits<std::int64_t>::min(),
          std::numeric_limits<std::int64_t>::max()}) {
        const auto decoded = set_cpu("vm2", value).decode();
        EXPECT_EQ(std::get<SetCpu>(decoded).micro_cpus, value);
    }
}

TEST(DecodeRequest, SetMemory) {
    const auto decoded = Request(PARTLINK_MBOX_OP_SET_MEMORY, "vm3").value(512).decode();
    const auto& memory = std::get<SetMemory>(decoded);
    EXPECT_EQ(memory.target, "vm3");
    EXPECT_EQ(memory.mib, 512);
}

TEST(DecodeRequest, Report) {
    const auto decoded = report().decode();
    const auto& r = std::get<ChartReport>(decoded);
    EXPECT_EQ(r.target, "vm2");
    EXPECT_DOUBLE_EQ(r.velocity.value(), 1.12);
    EXPECT_DOUBLE_EQ(r.trend.value(), 1.3);
    EXPECT_DOUBLE_EQ(r.ewma.value(), -0.2);
    EXPECT_DOUBLE_EQ(r.lower_limit.value(), -0.15);
    EXPECT_DOUBLE_EQ(r.upper_limit.value(), 0.15);
    EXPECT_DOUBLE_EQ(r.cpu.value(), 0.43);
    EXPECT_EQ(r.chart_state, static_cast<std::uint32_t>(PARTLINK_CHART_LOW));
}

TEST(DecodeRequest, ReportUndefinedValuesAreEmpty) {
    const auto u = PARTLINK_MBOX_UNDEFINED;
    const auto decoded = Request(PARTLINK_MBOX_OP_REPORT)
                             .chart(u, u, u, u, u, u, PARTLINK_CHART_WARMING_UP)
                             .decode();
    const auto& r = std::get<ChartReport>(decoded);
    EXPECT_FALSE(r.velocity);
    EXPECT_FALSE(r.trend);
    EXPECT_FALSE(r.ewma);
    EXPECT_FALSE(r.lower_limit);
    EXPECT_FALSE(r.upper_limit);
    EXPECT_FALSE(r.cpu);
    // One above UNDEFINED is a value.
    const auto other = Request(PARTLINK_MBOX_OP_REPORT).chart(u + 1, 0, 0, 0, 0, 0, 0).decode();
    EXPECT_TRUE(std::get<ChartReport>(other).velocity);
}

TEST(DecodeRequest, EveryChartState) {
    for (std::uint32_t state = PARTLINK_CHART_WARMING_UP; state <= PARTLINK_CHART_HIGH; ++state)
        EXPECT_EQ(std::get<ChartReport>(
                      Request(PARTLINK_MBOX_OP_REPORT).chart(0, 0, 0, 0, 0, 0, state).decode())
                      .chart_state,
                  state);
    EXPECT_THAT(Request(PARTLINK_MBOX_OP_REPORT).chart(0, 0, 0, 0, 0, 0, 4).error(),
                HasSubstr("unknown chart_state 4"));
    EXPECT_THAT(Request(PARTLINK_MBOX_OP_REPORT).chart(0, 0, 0, 0, 0, 0, 0xffffffff).error(),
                HasSubstr("unknown chart_state"));
}

TEST(DecodeRequest, CpuIsABusyFraction) {
    auto with_cpu = [](std::int64_t cpu) {
        return Request(PARTLINK_MBOX_OP_REPORT).chart(0, 0, 0, 0, 0, cpu, 1);
    };
    EXPECT_DOUBLE_EQ(std::get<ChartReport>(with_cpu(0).decode()).cpu.value(), 0.0);
    EXPECT_DOUBLE_EQ(std::get<ChartReport>(with_cpu(PARTLINK_MBOX_MICRO).decode()).cpu.value(),
                     1.0);
    const std::int64_t undefined = PARTLINK_MBOX_UNDEFINED;
    for (const std::int64_t bad :
         {std::int64_t{-1}, std::int64_t{PARTLINK_MBOX_MICRO + 1}, std::int64_t{2'000'000},
          std::numeric_limits<std::int64_t>::max(), undefined + 1})
        EXPECT_THAT(with_cpu(bad).error(), HasSubstr("cpu must be a busy fraction")) << bad;
}

TEST(DecodeRequest, UnknownOps) {
    for (const std::uint32_t op : {0u, 4u, 0x100u, 0xffffffffu})
        EXPECT_THAT(Request(op).error(), HasSubstr("unknown op " + std::to_string(op))) << op;
}

TEST(DecodeRequest, NamesOfSixteenBytesNeedNoNul) {
    const auto decoded = set_cpu("abcdefghijklmnop", 1'000'000).decode();
    EXPECT_EQ(std::get<SetCpu>(decoded).target, "abcdefghijklmnop");
    const auto donor = set_cpu("vm2", 1'000'000).donor("A.b_c-0123456789").decode();
    EXPECT_EQ(std::get<SetCpu>(donor).donor.value(), "A.b_c-0123456789");
}

TEST(DecodeRequest, BytesAfterTheNulAreRefused) {
    auto r = set_cpu("vm2", 1'000'000);
    r.bytes[offsetof(partlink_mbox_request, target) + 5] = 'x';
    EXPECT_THAT(r.error(), HasSubstr("target has bytes after its NUL padding"));
    auto d = set_cpu("vm2", 1'000'000).donor("vm3");
    d.bytes[offsetof(partlink_mbox_request, donor) + 15] = 1;
    EXPECT_THAT(d.error(), HasSubstr("donor has bytes after its NUL padding"));
    // A donor that starts with NUL but is not all zero.
    auto e = set_cpu("vm2", 1'000'000);
    e.bytes[offsetof(partlink_mbox_request, donor) + 1] = 'v';
    EXPECT_THAT(e.error(), HasSubstr("donor has bytes after its NUL padding"));
}

TEST(DecodeRequest, EmptyTargetIsRefused) {
    EXPECT_THAT(set_cpu("", 1'000'000).error(), HasSubstr("target is empty"));
    EXPECT_THAT(Request(PARTLINK_MBOX_OP_REPORT, "").error(), HasSubstr("target is empty"));
}

TEST(DecodeRequest, BadCharactersAreRefusedAndPrintable) {
    for (const std::string bad :
         {"vm 2", "vm/2", "../vm", ".", "..", "vm\n", "vm\x80", "\xff", "vm2;", "vm\\x"}) {
        const auto error = set_cpu(bad, 1'000'000).error();
        EXPECT_THAT(error, HasSubstr("is not a partition name")) << bad;
        for (const char c : error)
            EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in: " << error;
        EXPECT_THAT(set_cpu("vm2", 1'000'000).donor(bad).error(), HasSubstr("donor '")) << bad;
    }
}

TEST(DecodeRequest, FlagsReservedAndPadMustBeZero) {
    EXPECT_THAT(set_cpu("vm2", 1).set32(offsetof(partlink_mbox_request, flags), 1).error(),
                HasSubstr("flags must be zero"));
    EXPECT_THAT(set_cpu("vm2", 1).set32(offsetof(partlink_mbox_request, flags), 0x80000000).error(),
                HasSubstr("flags must be zero"));
    EXPECT_THAT(report().set32(offsetof(partlink_mbox_request, reserved), 1).error(),
                HasSubstr("reserved bytes must be zero"));
    for (std::size_t i = 0; i < sizeof(partlink_mbox_request::pad); ++i) {
        for (auto r : {set_cpu("vm2", 1), report()}) {
            r.bytes[offsetof(partlink_mbox_request, pad) + i] = 0x40;
            EXPECT_THAT(r.error(), HasSubstr("reserved bytes must be zero")) << "pad byte " << i;
        }
    }
}

TEST(DecodeRequest, ReportFieldsMustBeZeroInADirective) {
    const std::size_t begin = offsetof(partlink_mbox_request, velocity);
    const std::size_t end = offsetof(partlink_mbox_request, reserved);
    for (const std::uint32_t op : {PARTLINK_MBOX_OP_SET_CPU, PARTLINK_MBOX_OP_SET_MEMORY}) {
        for (std::size_t i = begin; i < end; ++i) {
            auto r = Request(op).value(1'000'000);
            r.bytes[i] = 1;
            EXPECT_THAT(r.error(), HasSubstr("REPORT fields must be zero"))
                << "op " << op << " byte " << i;
        }
    }
}

TEST(DecodeRequest, DonorOnlyForSetCpu) {
    EXPECT_THAT(Request(PARTLINK_MBOX_OP_SET_MEMORY).value(512).donor("vm3").error(),
                HasSubstr("donor is for SET_CPU only"));
    EXPECT_THAT(report().donor("vm3").error(), HasSubstr("donor is for SET_CPU only"));
}

TEST(DecodeRequest, ValueMustBeZeroInAReport) {
    EXPECT_THAT(report().value(1).error(), HasSubstr("value must be zero in a REPORT"));
}

TEST(DecodeRequest, WrongSizes) {
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{127},
                                   std::size_t{129}, std::size_t{136}, std::size_t{4096}}) {
        std::vector<std::uint8_t> bytes(size, 0);
        if (size >= 4)
            bytes[0] = PARTLINK_MBOX_OP_SET_CPU;
        try {
            decode_request(bytes);
            ADD_FAILURE() << size << " bytes decoded";
        } catch (const MalformedRequest& e) {
            EXPECT_THAT(e.what(),
                        HasSubstr("request of " + std::to_string(size) + " bytes, expected 128"));
        }
    }
}

// Decodes, or throws MalformedRequest: nothing else.
bool decodes(std::span<const std::uint8_t> bytes) {
    try {
        decode_request(bytes);
        return true;
    } catch (const MalformedRequest& e) {
        EXPECT_GT(std::strlen(e.what()), 0u);
        return false;
    }
}

TEST(DecodeRequestFuzz, RandomBytesDecodeOrThrowMalformed) {
    std::mt19937_64 random(20251125);
    std::uniform_int_distribution<int> byte(0, 255);
    Bytes bytes;
    for (int i = 0; i < 100'000; ++i) {
        for (auto& b : bytes)
            b = static_cast<std::uint8_t>(byte(random));
        EXPECT_NO_FATAL_FAILURE(decodes(bytes));
        (void)describe_raw_request(bytes);
    }
}

// Random bytes are nearly always refused at the op; mutating a few bytes of
// valid requests reaches every check and some successes.
TEST(DecodeRequestFuzz, MutatedValidRequestsDecodeOrThrowMalformed) {
    std::mt19937_64 random(7);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<std::size_t> offset(0, sizeof(Bytes) - 1);
    std::uniform_int_distribution<int> flips(1, 4);
    const std::array<Request, 4> seeds = {
        set_cpu("vm2", 1'500'000), set_cpu("vm3", 500'000).donor("vm1"),
        Request(PARTLINK_MBOX_OP_SET_MEMORY).value(512), report()};
    int decoded = 0;
    for (int i = 0; i < 100'000; ++i) {
        auto bytes = seeds[static_cast<std::size_t>(i) % seeds.size()].bytes;
        for (int n = flips(random); n > 0; --n)
            bytes[offset(random)] = static_cast<std::uint8_t>(byte(random));
        decoded += decodes(bytes);
        for (const char c : describe_raw_request(bytes))
            ASSERT_TRUE(c >= 0x20 && c < 0x7f);
    }
    EXPECT_GT(decoded, 1000);
    EXPECT_LT(decoded, 100'000);
}

TEST(DescribeRawRequest, PrintableTargetOrSize) {
    auto r = set_cpu("vm2", 1);
    EXPECT_EQ(describe_raw_request(r.bytes), "vm2");
    r.bytes[offsetof(partlink_mbox_request, target)] = 0x01;
    EXPECT_EQ(describe_raw_request(r.bytes), "\\x01m2");
    const std::vector<std::uint8_t> tiny(3, 0xff);
    EXPECT_EQ(describe_raw_request(tiny), "(3 bytes)");
}

std::string reason_of(const partlink_mbox_answer& answer) {
    return std::string(answer.reason, strnlen(answer.reason, sizeof answer.reason));
}

TEST(MakeAnswer, FieldsAreLittleEndian) {
    const auto answer = make_answer(PARTLINK_MBOX_CLAMPED, -1'400'000, "clamped to max");
    EXPECT_EQ(le32toh(answer.result), static_cast<std::uint32_t>(PARTLINK_MBOX_CLAMPED));
    EXPECT_EQ(answer.reserved, 0u);
    EXPECT_EQ(static_cast<std::int64_t>(le64toh(answer.value)), -1'400'000);
    EXPECT_EQ(reason_of(answer), "clamped to max");
    // The rest of reason is zero.
    for (std::size_t i = std::strlen("clamped to max"); i < sizeof answer.reason; ++i)
        EXPECT_EQ(answer.reason[i], '\0') << i;
}

TEST(MakeAnswer, ReasonIsCutAndAlwaysTerminated) {
    constexpr std::size_t room = sizeof(partlink_mbox_answer::reason) - 1;
    for (const std::size_t length : {std::size_t{0}, room - 1, room, room + 1, std::size_t{1000}}) {
        const std::string reason(length, 'r');
        const auto answer = make_answer(PARTLINK_MBOX_REFUSED, 0, reason);
        EXPECT_EQ(answer.reason[sizeof answer.reason - 1], '\0') << length;
        EXPECT_EQ(reason_of(answer), reason.substr(0, room)) << length;
    }
}

} // namespace
} // namespace partlink::daemon
