// The capacity policy file: parsing, validation, the default policy.
#include <gtest/gtest.h>

#include "fake_cgroup.hpp"
#include "policy.hpp"

namespace partlink::capacity {
namespace {

constexpr double kHost = 4;

Policy parse(const std::string& text, double host = kHost) {
    return parse_policy_text(text, host, "test.json");
}

// The problems parse() reports, or a failure if it accepted the text.
std::vector<std::string> problems_of(const std::string& text, double host = kHost) {
    try {
        parse(text, host);
    } catch (const PolicyError& e) {
        return e.problems();
    }
    ADD_FAILURE() << "accepted: " << text;
    return {};
}

::testing::AssertionResult has_problem(const std::vector<std::string>& problems,
                                       const std::string& fragment) {
    for (const auto& p : problems)
        if (p.find(fragment) != std::string::npos)
            return ::testing::AssertionSuccess();
    auto failure = ::testing::AssertionFailure() << "no problem mentions '" << fragment << "':";
    for (const auto& p : problems)
        failure << "\n  " << p;
    return failure;
}

constexpr const char* kGood = R"({
  "privileged": "vm1",
  "partitions": [
    {"name": "vm1", "entitlement": 0.5, "min": 0.2, "max": 1, "weight": 200},
    {"name": "vm2", "entitlement": 1.5, "memory_mib": {"min": 256, "max": 1024}},
    {"name": "vm3", "entitlement": 1}
  ]
})";

TEST(PolicyParse, ReadsEveryField) {
    const auto policy = parse(kGood);
    EXPECT_EQ(policy.privileged, "vm1");
    ASSERT_EQ(policy.partitions.size(), 3u);
    const auto& vm1 = *policy.find("vm1");
    EXPECT_EQ(vm1.entitlement, CpuAmount::from_cpus(0.5));
    EXPECT_EQ(vm1.min, CpuAmount::from_cpus(0.2));
    EXPECT_EQ(vm1.max, CpuAmount::from_cpus(1));
    EXPECT_EQ(vm1.weight, 200u);
    EXPECT_FALSE(vm1.memory);
    const auto& vm2 = *policy.find("vm2");
    EXPECT_EQ(vm2.min, CpuAmount::from_cpus(0.1));   // default
    EXPECT_EQ(vm2.max, CpuAmount::from_cpus(kHost)); // default: the whole host
    EXPECT_EQ(vm2.weight, 100u);
    ASSERT_TRUE(vm2.memory);
    EXPECT_EQ(*vm2.memory, (MemoryTarget{256, 1024}));
    EXPECT_EQ(policy.total_entitlement(), CpuAmount::from_cpus(3));
    EXPECT_EQ(policy.find("vm9"), nullptr);
}

TEST(PolicyParse, RoundTripsThroughJson) {
    const auto policy = parse(kGood);
    const auto again = parse_policy(to_json(policy), kHost);
    EXPECT_EQ(to_json(again), to_json(policy));
}

TEST(PolicyParse, UnknownKeysAreNamed) {
    const auto problems = problems_of(R"({"privileged": "vm1", "pool": 2,
        "partitions": [{"name": "vm1", "entitlement": 1, "maximum": 2,
                        "memory_mib": {"min": 1, "max": 2, "target": 3}}]})");
    EXPECT_TRUE(has_problem(problems, "unknown key 'pool'"));
    EXPECT_TRUE(has_problem(problems, "partitions[0] (vm1): unknown key 'maximum'"));
    EXPECT_TRUE(has_problem(problems, "memory_mib: unknown key 'target'"));
}

TEST(PolicyParse, MinAboveMax) {
    EXPECT_TRUE(has_problem(problems_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": 0.5, "min": 0.8, "max": 0.5}]})"),
                            "partition vm1: min 0.8 CPU is above max 0.5 CPU"));
}

TEST(PolicyParse, EntitlementOutsideMinMax) {
    const auto problems = problems_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": 2, "min": 0.5, "max": 1},
        {"name": "vm2", "entitlement": 0.2, "min": 0.5, "max": 1}]})");
    EXPECT_TRUE(
        has_problem(problems, "vm1: entitlement 2 CPU is outside [min 0.5 CPU, max 1 CPU]"));
    EXPECT_TRUE(has_problem(problems, "vm2: entitlement 0.2 CPU is outside"));
}

TEST(PolicyParse, TotalEntitlementAboveTheHost) {
    EXPECT_TRUE(has_problem(problems_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": 1.5}, {"name": "vm2", "entitlement": 1}]})",
                                        2),
                            "the entitlements add up to 2.5 CPU, more than the host's 2 CPU"));
}

TEST(PolicyParse, UnknownPrivilegedPartition) {
    EXPECT_TRUE(has_problem(problems_of(R"({"privileged": "vm7", "partitions": [
        {"name": "vm1", "entitlement": 1}]})"),
                            "the privileged partition 'vm7' is not one of the partitions"));
    EXPECT_TRUE(has_problem(problems_of(R"({"partitions": [{"name": "vm1", "entitlement": 1}]})"),
                            "\"privileged\" must name"));
}

TEST(PolicyParse, BadValuesAndTypes) {
    const auto problems = problems_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": "half"},
        {"name": "vm2", "entitlement": -1},
        {"name": "vm3", "entitlement": 1, "weight": 0},
        {"name": "vm4", "entitlement": 1, "weight": 1.5},
        {"entitlement": 1},
        {"name": "vm6"},
        42]})");
    EXPECT_TRUE(has_problem(
        problems, "partitions[0] (vm1): 'entitlement' must be a number of CPUs, not a string"));
    EXPECT_TRUE(
        has_problem(problems, "partitions[1] (vm2): 'entitlement' must be a positive number"));
    EXPECT_TRUE(
        has_problem(problems, "partitions[2] (vm3): 'weight' must be an integer in 1..10000"));
    EXPECT_TRUE(has_problem(problems, "partitions[3] (vm4): 'weight'"));
    EXPECT_TRUE(has_problem(problems, "partitions[4]: 'name' is required"));
    EXPECT_TRUE(has_problem(problems, "partitions[5] (vm6): 'entitlement' is required"));
    EXPECT_TRUE(has_problem(problems, "partitions[6]: must be an object, not a number"));
}

TEST(PolicyParse, ValueProblems) {
    const auto problems = problems_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": 1, "max": 8},
        {"name": "vm1", "entitlement": 0.5},
        {"name": "../x", "entitlement": 0.5},
        {"name": "vm4", "entitlement": 0.5, "min": 0.001},
        {"name": "vm5", "entitlement": 0.5, "memory_mib": {"min": 2048, "max": 1024}}]})");
    EXPECT_TRUE(has_problem(problems, "vm1: max 8 CPU is more than the host's 4 CPU"));
    EXPECT_TRUE(has_problem(problems, "vm1: listed more than once"));
    EXPECT_TRUE(has_problem(problems, "partition ../x: the name must be"));
    EXPECT_TRUE(has_problem(problems, "vm4: min 0.001 CPU is below the kernel's smallest cap"));
    EXPECT_TRUE(
        has_problem(problems, "vm5: memory_mib min 2048 must be positive and at most max 1024"));
}

TEST(PolicyParse, NotJsonOrNotAnObject) {
    EXPECT_TRUE(has_problem(problems_of("{nope"), "not valid JSON"));
    EXPECT_TRUE(has_problem(problems_of("[1, 2]"), "must be a JSON object"));
    EXPECT_TRUE(has_problem(problems_of(R"({"privileged": "vm1"})"), "\"partitions\" is required"));
    EXPECT_TRUE(
        has_problem(problems_of(R"({"privileged": "vm1", "partitions": []})"), "no partitions"));
}

TEST(PolicyParse, ErrorMessageListsEveryProblem) {
    try {
        parse(R"({"privileged": "vm9", "partitions": [{"name": "vm1", "entitlement": 9}]})");
        FAIL();
    } catch (const PolicyError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind("invalid capacity policy test.json:", 0), 0u) << message;
        EXPECT_GE(e.problems().size(), 3u) << message;
    }
}

TEST(PolicyLoad, FromAFile) {
    testing::TempDir tmp;
    testing::write_file(tmp.path() / "policy.json", kGood);
    EXPECT_EQ(load_policy(tmp.path() / "policy.json", kHost).partitions.size(), 3u);
    EXPECT_THROW(load_policy(tmp.path() / "missing.json", kHost), Error);
    testing::write_file(tmp.path() / "bad.json", "{}");
    try {
        load_policy(tmp.path() / "bad.json", kHost);
        FAIL();
    } catch (const PolicyError& e) {
        EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos);
    }
}

TEST(DefaultPolicy, EqualSharesVm1Privileged) {
    const auto policy = default_policy(3, 2);
    EXPECT_EQ(policy.privileged, "vm1");
    ASSERT_EQ(policy.partitions.size(), 3u);
    for (const auto& p : policy.partitions) {
        EXPECT_EQ(p.entitlement.units, 66'666); // 2/3 CPU, rounded down to fit
        EXPECT_EQ(p.min, CpuAmount::from_cpus(0.1));
        EXPECT_EQ(p.max, CpuAmount::from_cpus(2));
        EXPECT_EQ(p.weight, 100u);
    }
    EXPECT_EQ(policy.partitions[2].name, "vm3");
    EXPECT_LE(policy.total_entitlement(), CpuAmount::from_cpus(2));
    EXPECT_TRUE(validate_policy(policy).empty());
}

TEST(DefaultPolicy, TooManyPartitionsForTheHost) {
    EXPECT_THROW(default_policy(30, 2), PolicyError);
    EXPECT_THROW(default_policy(0, 2), PolicyError);
}

TEST(HostCpus, AtLeastOne) {
    EXPECT_GE(host_cpu_count(), 1.0);
}

} // namespace
} // namespace partlink::capacity
