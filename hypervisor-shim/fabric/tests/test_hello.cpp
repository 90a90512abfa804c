// HELLO validation: every bad field is refused with a precise reason.
#include <cstddef>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_device.hpp"
#include "hello.hpp"

using namespace partlink;
using namespace partlink::fabric;
using namespace partlink::fabric::test;
using ::testing::HasSubstr;

namespace {

class HelloTest : public ::testing::Test {
protected:
    FakeDevice dev{3, "vm4"};

    // The reason check_hello gives for `port` with the device's fds.
    std::string reason(const partlink_msg_port& port, std::size_t len = sizeof(partlink_msg_port),
                       std::vector<int> fds = {}) {
        if (fds.empty())
            fds = {dev.doorbell.get(), dev.ram.get()};
        try {
            check_hello(make_received(PARTLINK_MSG_HELLO, &port, len, fds));
        } catch (const ProtocolError& e) {
            return e.what();
        }
        return "accepted";
    }
};

TEST_F(HelloTest, AcceptsAValidHelloAndNormalizesIt) {
    partlink_msg_port p = dev.msg;
    p.epoch = 77;
    p.pad[0] = 9;
    p.regions[5].gpa = 1234; // unused region: ignored, zeroed
    Hello hello = check_hello(
        make_received(PARTLINK_MSG_HELLO, &p, sizeof(p), {dev.doorbell.get(), dev.ram.get()}));
    EXPECT_EQ(hello.name, "vm4");
    EXPECT_EQ(hello.port.port, 3u);
    EXPECT_EQ(hello.port.epoch, 0u);
    EXPECT_EQ(hello.port.pad[0], 0);
    EXPECT_EQ(hello.port.regions[5].gpa, 0u);
    EXPECT_EQ(hello.port.regions[0].size, dev.ram_size);
    ASSERT_EQ(hello.fds.size(), 2u);
    EXPECT_TRUE(is_eventfd(hello.fds[0].get()));
}

TEST_F(HelloTest, AcceptsTheShortFormUpToTheLastRegion) {
    std::size_t len = offsetof(partlink_msg_port, regions) + sizeof(partlink_ram_region);
    EXPECT_EQ(reason(dev.msg, len), "accepted");
}

TEST_F(HelloTest, RefusesABadAbiVersion) {
    auto p = dev.msg;
    p.abi_version = 1;
    EXPECT_THAT(reason(p), HasSubstr("ABI version 1, this partlinkd speaks " +
                                     std::to_string(PARTLINK_ABI_VERSION)));
}

TEST_F(HelloTest, RefusesAPortOutOfRange) {
    auto p = dev.msg;
    p.port = PARTLINK_FABRIC_PORTS;
    EXPECT_THAT(reason(p), HasSubstr("port 64 out of range"));
    p.port = 0xffffffff;
    EXPECT_THAT(reason(p), HasSubstr("out of range"));
}

TEST_F(HelloTest, RefusesTooManyOrNoRegions) {
    auto p = dev.msg;
    p.nr_regions = PARTLINK_MAX_REGIONS + 1;
    EXPECT_THAT(reason(p), HasSubstr("9 RAM regions (1..8 allowed)"));
    p.nr_regions = 0;
    EXPECT_THAT(reason(p), HasSubstr("0 RAM regions"));
}

TEST_F(HelloTest, RefusesAFdIndexOutOfRange) {
    auto p = dev.msg;
    p.regions[0].fd_index = 2;
    EXPECT_THAT(reason(p), HasSubstr("region 0: fd_index 2 out of range"));
    p.regions[0].fd_index = 0; // the doorbell is not RAM
    EXPECT_THAT(reason(p), HasSubstr("fd_index 0 out of range"));
}

TEST_F(HelloTest, RefusesAnFdNoRegionRefersTo) {
    auto extra = make_memfd(4096);
    EXPECT_THAT(reason(dev.msg, sizeof(dev.msg), {dev.doorbell.get(), dev.ram.get(), extra.get()}),
                HasSubstr("3 fds but the regions refer to 1 RAM fds"));
}

TEST_F(HelloTest, RefusesMissingFds) {
    try {
        check_hello(make_received(PARTLINK_MSG_HELLO, &dev.msg, sizeof(dev.msg), {}));
        FAIL() << "accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("0 fds"));
    }
}

TEST_F(HelloTest, RefusesADoorbellThatIsNotAnEventfd) {
    auto not_eventfd = make_memfd(4096);
    EXPECT_THAT(reason(dev.msg, sizeof(dev.msg), {not_eventfd.get(), dev.ram.get()}),
                HasSubstr("fd 0 (the doorbell) is not an eventfd"));
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
    EXPECT_THAT(reason(dev.msg, sizeof(dev.msg), {r.get(), dev.ram.get()}),
                HasSubstr("not an eventfd"));
}

TEST_F(HelloTest, RefusesRamThatIsNotAFile) {
    EXPECT_THAT(reason(dev.msg, sizeof(dev.msg), {dev.doorbell.get(), dev.doorbell.get()}),
                HasSubstr("fd 1 is not a RAM file"));
}

TEST_F(HelloTest, RefusesRamOpenReadOnly) {
    std::string proc = "/proc/self/fd/" + std::to_string(dev.ram.get());
    UniqueFd ro(::open(proc.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(ro);
    EXPECT_THAT(reason(dev.msg, sizeof(dev.msg), {dev.doorbell.get(), ro.get()}),
                HasSubstr("RAM fd 1 is not open read-write"));
}

TEST_F(HelloTest, RefusesARegionBeyondTheFile) {
    auto p = dev.msg;
    p.regions[0].size = dev.ram_size + 4096;
    EXPECT_THAT(reason(p), HasSubstr("beyond the end of RAM fd 1 (0x100000 bytes)"));
    p = dev.msg;
    p.regions[0].offset = 4096;
    EXPECT_THAT(reason(p), HasSubstr("beyond the end"));
}

TEST_F(HelloTest, RefusesOverflow) {
    auto p = dev.msg;
    p.regions[0].offset = 0xfffffffffffff000ull;
    p.regions[0].size = 0x2000;
    EXPECT_THAT(reason(p), HasSubstr("overflows"));
    p = dev.msg;
    p.regions[0].gpa = 0xfffffffffffff000ull;
    EXPECT_THAT(reason(p), HasSubstr("gpa 0xfffffffffffff000 + size 0x100000 overflows"));
}

TEST_F(HelloTest, RefusesEmptyAndOverlappingRegions) {
    auto p = dev.msg;
    p.regions[0].size = 0;
    EXPECT_THAT(reason(p), HasSubstr("region 0 is empty"));
    p = dev.msg;
    p.nr_regions = 2;
    p.regions[0].size = 0x80000;
    p.regions[1] = {0x40000, 0x40000, 0x80000, 1, 0};
    EXPECT_THAT(reason(p), HasSubstr("region 1 [0x40000, 0x80000) overlaps region 0"));
    p.regions[1].gpa = 0x100000000ull; // above 4G: fine
    EXPECT_EQ(reason(p), "accepted");
}

TEST_F(HelloTest, RefusesAnUnterminatedEmptyOrUnprintableName) {
    auto p = dev.msg;
    std::memset(p.name, 'a', sizeof(p.name));
    EXPECT_THAT(reason(p), HasSubstr("name is not NUL-terminated within 16 bytes"));
    std::memset(p.name, 0, sizeof(p.name));
    EXPECT_THAT(reason(p), HasSubstr("name is empty"));
    std::strcpy(p.name, "vm\n1");
    EXPECT_THAT(reason(p), HasSubstr("non-printable byte 0xa at offset 2"));
}

TEST_F(HelloTest, RefusesMulticastAndZeroMacs) {
    auto p = dev.msg;
    p.mac[0] = 0x01;
    EXPECT_THAT(reason(p), HasSubstr("01:54:00:00:00:04 is multicast"));
    std::memset(p.mac, 0xff, sizeof(p.mac));
    EXPECT_THAT(reason(p), HasSubstr("multicast"));
    std::memset(p.mac, 0, sizeof(p.mac));
    EXPECT_THAT(reason(p), HasSubstr("MAC is all zeros"));
}

TEST_F(HelloTest, RefusesATruncatedOrInconsistentPayload) {
    EXPECT_THAT(reason(dev.msg, 10), HasSubstr("payload of 10 bytes is truncated"));
    EXPECT_THAT(reason(dev.msg, offsetof(partlink_msg_port, regions)),
                HasSubstr("bytes for 1 regions (expected 72 or 296)"));
    auto p = dev.msg;
    p.nr_regions = 2;
    EXPECT_THAT(reason(p, offsetof(partlink_msg_port, regions) + sizeof(partlink_ram_region)),
                HasSubstr("for 2 regions"));
}

TEST_F(HelloTest, RefusesGarbage) {
    std::vector<std::uint8_t> garbage(sizeof(partlink_msg_port));
    for (std::size_t i = 0; i < garbage.size(); ++i)
        garbage[i] = static_cast<std::uint8_t>(i * 37 + 11);
    try {
        check_hello(make_received(PARTLINK_MSG_HELLO, garbage.data(), garbage.size(),
                                  {dev.doorbell.get(), dev.ram.get()}));
        FAIL() << "garbage accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("HELLO: ABI version"));
    }
}

TEST_F(HelloTest, RefusesAnotherMessageType) {
    try {
        check_hello(make_received(PARTLINK_MSG_WELCOME, &dev.msg, sizeof(dev.msg), {}));
        FAIL() << "accepted";
    } catch (const ProtocolError& e) {
        EXPECT_THAT(e.what(), HasSubstr("expected HELLO, got WELCOME"));
    }
}

} // namespace
