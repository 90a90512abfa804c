// capacity.json: the run's policy, cgroups and logs as the launcher hands
// them to partlinkd; every mistake named, all of them at once.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_cgroup.hpp"
#include "run_config.hpp"

namespace partlink::capacity {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::TempDir;
using testing::write_file;

json valid() {
    return json::parse(R"({
        "host_cpus": 2,
        "policy": {"privileged": "vm1", "partitions": [
            {"name": "vm1", "entitlement": 0.5, "min": 0.1, "max": 1},
            {"name": "vm2", "entitlement": 1.5, "weight": 300}]},
        "cgroups": {"vm1": "/sys/fs/cgroup/cpu/partlink/r1/vm1",
                    "vm2": "/sys/fs/cgroup/cpu/partlink/r1/vm2"},
        "audit_log": "/run/partlink/r1/wlm-audit.jsonl",
        "chart_log": "/run/partlink/r1/wlm-chart.jsonl"})");
}

// The problems parse_run_config reports, or none.
std::vector<std::string> problems_of(const json& document) {
    try {
        parse_run_config(document, "capacity.json");
    } catch (const PolicyError& e) {
        EXPECT_THAT(e.what(), HasSubstr("capacity.json"));
        return e.problems();
    }
    return {};
}

bool has(const std::vector<std::string>& problems, const std::string& text) {
    for (const auto& p : problems)
        if (p.find(text) != std::string::npos)
            return true;
    return false;
}

TEST(RunConfig, ParsesAValidConfig) {
    const auto config = parse_run_config(valid(), "capacity.json");
    EXPECT_EQ(config.policy.host_cpus, 2);
    EXPECT_EQ(config.policy.privileged, "vm1");
    ASSERT_EQ(config.policy.partitions.size(), 2u);
    EXPECT_EQ(config.policy.find("vm2")->weight, 300u);
    EXPECT_EQ(config.cgroups.at("vm2"), "/sys/fs/cgroup/cpu/partlink/r1/vm2");
    EXPECT_EQ(config.audit_log, "/run/partlink/r1/wlm-audit.jsonl");
    EXPECT_EQ(config.chart_log, "/run/partlink/r1/wlm-chart.jsonl");
}

TEST(RunConfig, RoundTripsThroughJson) {
    const auto config = parse_run_config(valid(), "capacity.json");
    const auto again = parse_run_config(to_json(config), "again");
    EXPECT_EQ(again.cgroups, config.cgroups);
    EXPECT_EQ(again.audit_log, config.audit_log);
    EXPECT_EQ(again.chart_log, config.chart_log);
    EXPECT_EQ(again.policy.host_cpus, config.policy.host_cpus);
    EXPECT_EQ(to_json(again.policy), to_json(config.policy));
}

TEST(RunConfig, NotAnObject) {
    EXPECT_TRUE(has(problems_of(json::array()), "must be a JSON object"));
    EXPECT_TRUE(has(problems_of(json("text")), "must be a JSON object"));
}

TEST(RunConfig, UnknownAndMissingKeysAllAtOnce) {
    auto document = valid();
    document.erase("cgroups");
    document.erase("chart_log");
    document["colour"] = "blue";
    const auto problems = problems_of(document);
    EXPECT_EQ(problems.size(), 3u);
    EXPECT_TRUE(has(problems, "unknown key 'colour'"));
    EXPECT_TRUE(has(problems, "'cgroups' is required"));
    EXPECT_TRUE(has(problems, "'chart_log' is required"));
}

TEST(RunConfig, BadTopLevelValues) {
    auto document = valid();
    document["host_cpus"] = 0;
    document["audit_log"] = "relative/audit.jsonl";
    document["chart_log"] = 7;
    document["cgroups"] = json::array();
    const auto problems = problems_of(document);
    EXPECT_EQ(problems.size(), 4u);
    EXPECT_TRUE(has(problems, "'host_cpus' must be a positive number"));
    EXPECT_TRUE(has(problems, "'audit_log' must be an absolute path"));
    EXPECT_TRUE(has(problems, "'chart_log' must be an absolute path"));
    EXPECT_TRUE(has(problems, "'cgroups' must map each partition"));
    for (const auto& host : {json("2"), json(-1), json(true), json(nullptr)}) {
        auto d = valid();
        d["host_cpus"] = host;
        EXPECT_TRUE(has(problems_of(d), "'host_cpus' must be a positive number")) << host;
    }
    auto empty = valid();
    empty["audit_log"] = "";
    EXPECT_TRUE(has(problems_of(empty), "'audit_log' must be an absolute path"));
}

TEST(RunConfig, ThePolicyIsCheckedAgainstTheHostCpus) {
    auto document = valid();
    document["host_cpus"] = 1; // the entitlements add up to 2
    const auto problems = problems_of(document);
    EXPECT_FALSE(problems.empty());
    try {
        parse_run_config(document, "capacity.json");
    } catch (const PolicyError& e) {
        EXPECT_THAT(e.what(), HasSubstr("capacity.json: policy"));
    }
    auto no_privileged = valid();
    no_privileged["policy"].erase("privileged");
    EXPECT_FALSE(problems_of(no_privileged).empty());
}

TEST(RunConfig, EveryPartitionHasACgroupAndNothingElseDoes) {
    auto document = valid();
    document["cgroups"].erase("vm2");
    document["cgroups"]["vm9"] = "/sys/fs/cgroup/cpu/partlink/r1/vm9";
    document["cgroups"]["vm1"] = "partlink/r1/vm1";
    const auto problems = problems_of(document);
    EXPECT_EQ(problems.size(), 3u);
    EXPECT_TRUE(has(problems, "cgroups.vm1 must be an absolute path"));
    EXPECT_TRUE(has(problems, "cgroups.vm9: no such partition in the policy"));
    EXPECT_TRUE(has(problems, "partition vm2 has no cgroup"));
    auto not_text = valid();
    not_text["cgroups"]["vm2"] = 5;
    EXPECT_TRUE(has(problems_of(not_text), "cgroups.vm2 must be an absolute path"));
}

TEST(RunConfig, BalloonsAreOptionalAndChecked) {
    EXPECT_TRUE(parse_run_config(valid(), "c").balloons.empty());

    json document = valid();
    document["balloons"] = {{"vm1", {{"qmp", "/run/r1/vm1.hv.qmp"}, {"boot_mib", 512}}}};
    const auto config = parse_run_config(document, "c");
    ASSERT_EQ(config.balloons.size(), 1u);
    EXPECT_EQ(config.balloons.at("vm1").qmp, "/run/r1/vm1.hv.qmp");
    EXPECT_EQ(config.boot_memory(), (BootMemory{{"vm1", 512}}));
    EXPECT_EQ(parse_run_config(json::parse(to_json(config).dump()), "c").balloons, config.balloons);

    document["balloons"] = {{"vm9", {{"qmp", "/q"}, {"boot_mib", 512}}},
                            {"vm1", {{"qmp", "q"}, {"boot_mib", -5}}},
                            {"vm2", {{"qmp", "/q"}}}};
    const auto problems = problems_of(document);
    EXPECT_TRUE(has(problems, "balloons.vm9: no such partition in the policy"));
    EXPECT_TRUE(has(problems, "balloons.vm1.qmp must be an absolute path"));
    EXPECT_TRUE(has(problems, "balloons.vm1.boot_mib must be a positive whole number"));
    EXPECT_TRUE(has(problems, "balloons.vm2 must be {"));
    document["balloons"] = "vm1";
    EXPECT_TRUE(has(problems_of(document), "'balloons' must map partitions"));

    // A memory range the guest cannot reach: it boots with less.
    document = valid();
    document["policy"]["partitions"][1]["memory_mib"] = {{"min", 256}, {"max", 1024}};
    document["balloons"] = {{"vm2", {{"qmp", "/q"}, {"boot_mib", 512}}}};
    const auto beyond = problems_of(document);
    EXPECT_TRUE(
        has(beyond, "vm2's memory_mib max 1024 is more than the RAM it boots with, 512 MiB"))
        << ::testing::PrintToString(beyond);
}

TEST(RunConfig, LoadNamesTheFile) {
    TempDir tmp;
    const auto file = tmp.path() / "capacity.json";
    try {
        load_run_config(file);
        FAIL() << "loaded a missing file";
    } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr("cannot read the capacity configuration " + file.string()));
    }
    write_file(file, "{\"host_cpus\": 2,");
    try {
        load_run_config(file);
        FAIL() << "loaded broken JSON";
    } catch (const PolicyError& e) {
        EXPECT_THAT(e.what(), HasSubstr(file.string()));
        EXPECT_TRUE(has(e.problems(), "not valid JSON"));
    }
    write_file(file, valid().dump(2));
    EXPECT_EQ(load_run_config(file).cgroups.size(), 2u);
}

} // namespace
} // namespace partlink::capacity
