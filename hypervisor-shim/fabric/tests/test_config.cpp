// partlinkd's config file: networks, WLM, and clear errors.
#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config.hpp"
#include "error.hpp"
#include "fake_device.hpp"

using namespace partlink;
using namespace partlink::fabric;
using ::testing::HasSubstr;

namespace {

std::string error_of(std::string_view text) {
    try {
        Config::parse(text, "test.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

TEST(Config, WithoutOneEveryoneIsInNetworkOne) {
    Config config;
    EXPECT_EQ(config.network_of("anything"), 1u);
    EXPECT_EQ(config.flags_of("vm1"), 0u);
    EXPECT_FALSE(config.has_networks());
}

TEST(Config, NumbersNetworksInNameOrder) {
    auto config = Config::parse(
        R"({"networks": {"red": ["vm3"], "blue": ["vm1", "vm2"]}, "wlm": "vm1"})", "t");
    EXPECT_EQ(config.network_of("vm1"), 1u);
    EXPECT_EQ(config.network_of("vm2"), 1u);
    EXPECT_EQ(config.network_of("vm3"), 2u);
    EXPECT_EQ(config.network_of("vm4"), std::nullopt);
    EXPECT_EQ(config.network_name(1), "blue");
    EXPECT_EQ(config.network_name(2), "red");
    EXPECT_EQ(config.flags_of("vm1"), static_cast<std::uint32_t>(PARTLINK_PORT_WLM));
    EXPECT_EQ(config.flags_of("vm2"), 0u);
}

TEST(Config, WlmAloneKeepsOneNetwork) {
    auto config = Config::parse(R"({"wlm": "vm2"})", "t");
    EXPECT_EQ(config.network_of("vm9"), 1u);
    EXPECT_EQ(config.flags_of("vm2"), static_cast<std::uint32_t>(PARTLINK_PORT_WLM));
}

TEST(Config, RefusesBadDocuments) {
    EXPECT_THAT(error_of("{"), HasSubstr("test.json: not valid JSON"));
    EXPECT_THAT(error_of("[]"), HasSubstr("test.json: expected a JSON object, got array"));
    EXPECT_THAT(error_of(R"({"network": {}})"),
                HasSubstr("test.json: unknown key \"network\" (known: networks, wlm)"));
    EXPECT_THAT(error_of(R"({"networks": []})"), HasSubstr("\"networks\" must be an object"));
    EXPECT_THAT(error_of(R"({"networks": {"blue": "vm1"}})"),
                HasSubstr("network \"blue\" must be a list of partition names, got string"));
    EXPECT_THAT(error_of(R"({"networks": {"blue": [1]}})"),
                HasSubstr("partition names must be strings, got number"));
    EXPECT_THAT(error_of(R"({"wlm": 1})"), HasSubstr("\"wlm\" must be a partition name"));
    EXPECT_THAT(error_of(R"({"networks": {"blue": ["a-name-that-is-too-long"]}})"),
                HasSubstr("must be 1..15 characters"));
}

TEST(Config, RefusesAPartitionInTwoNetworks) {
    EXPECT_THAT(error_of(R"({"networks": {"blue": ["vm1"], "red": ["vm1"]}})"),
                HasSubstr("partition vm1 is in network \"blue\" and in \"red\""));
    EXPECT_THAT(error_of(R"({"networks": {"blue": ["vm1", "vm1"]}})"),
                HasSubstr("in network \"blue\" twice"));
}

TEST(Config, RefusesAWlmInNoNetwork) {
    EXPECT_THAT(error_of(R"({"networks": {"blue": ["vm1"]}, "wlm": "vm2"})"),
                HasSubstr("the WLM partition vm2 is in no network"));
}

TEST(Config, LoadNamesTheFile) {
    test::TempDir dir;
    try {
        Config::load(dir / "missing.json");
        FAIL() << "loaded";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(),
                    HasSubstr("cannot read config file " + (dir / "missing.json").string()));
    }
    std::ofstream(dir / "bad.json") << "{\"networks\": 3}";
    try {
        Config::load(dir / "bad.json");
        FAIL() << "loaded";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr((dir / "bad.json").string() + ": \"networks\""));
    }
    std::ofstream(dir / "good.json") << R"({"networks": {"a": ["vm1"]}})";
    EXPECT_EQ(Config::load(dir / "good.json").network_of("vm1"), 1u);
}

} // namespace
