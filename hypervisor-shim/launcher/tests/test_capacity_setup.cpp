// The capacity side of `partlink up`: a --policy file checked against the
// run, the policy planned into the partitions' cgroups, and the
// RUN/capacity.json that partlinkd gets.
#include <fstream>
#include <stdlib.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "error.hpp"
#include "fake_cgroup.hpp"
#include "host/net_setup.hpp"
#include "run/capacity_setup.hpp"
#include "run/options.hpp"
#include "run_state_fixture.hpp"

namespace partlink {
namespace {

namespace fs = std::filesystem;
namespace cap = partlink::capacity;
using cap::testing::TempDir;
using partlink::testing::state_of;

cap::Policy policy_of(const std::string& text, double host_cpus = 4) {
    return cap::parse_policy_text(text, host_cpus, "policy.json");
}

// vm1..vm3, vm2 privileged, each with its own bounds and weight.
const char* kThree = R"({"privileged": "vm2", "partitions": [
    {"name": "vm1", "entitlement": 0.5, "min": 0.2, "max": 1, "weight": 50},
    {"name": "vm2", "entitlement": 1, "min": 0.5, "max": 2},
    {"name": "vm3", "entitlement": 1.5, "weight": 300}]})";

std::string usage_error_of(const cap::Policy& policy, int vms) {
    try {
        check_policy_for_run(policy, vms, 512, "/p/policy.json");
    } catch (const UsageError& e) {
        EXPECT_EQ(e.exit_code(), kExitUsage);
        return e.what();
    }
    return "(no error)";
}

TEST(PolicyForRun, ExactlyThePartitionsOfTheRunFit) {
    EXPECT_TRUE(policy_run_problems(policy_of(kThree), 3, 512).empty());
    EXPECT_NO_THROW(check_policy_for_run(policy_of(kThree), 3, 512, "p.json"));
}

TEST(PolicyForRun, MissingPartitionsAreNamed) {
    const auto problems = policy_run_problems(policy_of(kThree), 4, 512);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0], "vm4 has no entry (every partition of the run needs one)");
    const std::string what = usage_error_of(policy_of(kThree), 4);
    EXPECT_EQ(what.rfind("--policy /p/policy.json does not fit a run of 4 partitions:", 0), 0u)
        << what;
    EXPECT_NE(what.find("vm4 has no entry"), std::string::npos) << what;
}

TEST(PolicyForRun, PartitionsBeyondTheRunAndStrangersAreNamed) {
    const auto problems = policy_run_problems(policy_of(kThree), 2, 512);
    EXPECT_EQ(problems,
              (std::vector<std::string>{"partition 'vm3' is not one of this run's (vm1..vm2)"}));
    const auto policy = policy_of(R"({"privileged": "db", "partitions": [
        {"name": "db", "entitlement": 1}, {"name": "vm01", "entitlement": 1}]})");
    const auto strangers = policy_run_problems(policy, 1, 512);
    ASSERT_EQ(strangers.size(), 3u);
    EXPECT_EQ(strangers[0], "partition 'db' is not one of this run's (vm1)");
    EXPECT_EQ(strangers[1], "partition 'vm01' is not one of this run's (vm1)");
    EXPECT_EQ(strangers[2], "vm1 has no entry (every partition of the run needs one)");
    // Every problem at once, one per line.
    const std::string what = usage_error_of(policy, 1);
    EXPECT_NE(what.find("a run of 1 partition:\n  - partition 'db'"), std::string::npos) << what;
    EXPECT_NE(what.find("\n  - vm1 has no entry"), std::string::npos) << what;
}

TEST(PolicyForRun, AMemoryRangeBeyondTheBootRamIsNamed) {
    const auto policy = policy_of(R"({"privileged": "vm1", "partitions": [
        {"name": "vm1", "entitlement": 1, "memory_mib": {"min": 128, "max": 512}},
        {"name": "vm2", "entitlement": 1, "memory_mib": {"min": 128, "max": 384}}]})");
    EXPECT_TRUE(policy_run_problems(policy, 2, 512).empty());
    EXPECT_EQ(policy_run_problems(policy, 2, 384),
              (std::vector<std::string>{"vm1's memory_mib max 512 is more than the 384 MiB it "
                                        "boots with (--mem): a balloon only takes memory away"}));
}

TEST(DefaultRunPolicy, EqualSharesAndTheWlmPartition) {
    const auto policy = default_run_policy(3, 2.0, "vm1");
    EXPECT_EQ(policy.privileged, "vm1");
    ASSERT_EQ(policy.partitions.size(), 3u);
    EXPECT_EQ(policy.partitions[2].entitlement.units, 66'666);
    EXPECT_EQ(default_run_policy(3, 2.0, "vm3").privileged, "vm3");
    // validate_up_args refuses a WLM partition outside the run first.
    EXPECT_THROW(default_run_policy(3, 2.0, "vm9"), std::logic_error);
    EXPECT_THROW(default_run_policy(16, 1.0, "vm1"), cap::PolicyError);
}

class PlanWithPolicy : public ::testing::TestWithParam<cap::CgroupVersion> {
protected:
    cap::testing::FakeHost host{GetParam()};
};

TEST_P(PlanWithPolicy, EntitlementWeightAndBoundsPerPartition) {
    RunState s = state_of(3, "/tmp/some-run");
    plan_cgroups(s, *host.controller, policy_of(kThree));
    ASSERT_TRUE(s.cgroup_run);
    const auto& vm1 = *s.partitions[0].cgroup;
    EXPECT_EQ(vm1.path, *s.cgroup_run / "vm1");
    EXPECT_EQ(vm1.entitlement_units, 50'000);
    EXPECT_EQ(vm1.weight, 50u);
    EXPECT_EQ(vm1.min_units, 20'000);
    EXPECT_EQ(vm1.max_units, 100'000);
    const auto& vm3 = *s.partitions[2].cgroup;
    EXPECT_EQ(vm3.entitlement_units, 150'000);
    EXPECT_EQ(vm3.weight, 300u);
    EXPECT_EQ(vm3.min_units, 10'000);  // the default minimum
    EXPECT_EQ(vm3.max_units, 400'000); // every host CPU

    // Created at their entitlement, each with its own weight.
    create_cgroups(s, *host.controller);
    EXPECT_EQ(host.controller->cap(vm1.path), cap::CpuCap::from_cpus(0.5));
    EXPECT_EQ(host.controller->cap(vm3.path), cap::CpuCap::from_cpus(1.5));
    if (GetParam() == cap::CgroupVersion::v2)
        EXPECT_EQ(host.controller->weight(vm3.path), 300u);

    // What status shows of it.
    const CapacityStatus c = capacity_status(vm1, host.controller.get());
    EXPECT_DOUBLE_EQ(c.entitlement_cpus, 0.5);
    ASSERT_TRUE(c.min_cpus && c.max_cpus);
    EXPECT_DOUBLE_EQ(*c.min_cpus, 0.2);
    EXPECT_DOUBLE_EQ(*c.max_cpus, 1.0);
    std::vector<std::string> errors;
    remove_run_cgroups(s.run_dir, s, *host.controller, errors);
    EXPECT_TRUE(errors.empty());
}

TEST_P(PlanWithPolicy, APolicyWithoutAPartitionOfTheRunIsRefusedBeforeAnyPlan) {
    RunState s = state_of(4, "/tmp/some-run");
    EXPECT_THROW(plan_cgroups(s, *host.controller, policy_of(kThree)), Error);
    EXPECT_FALSE(s.cgroup_run);
    EXPECT_FALSE(s.partitions[0].cgroup);
}

INSTANTIATE_TEST_SUITE_P(Versions, PlanWithPolicy,
                         ::testing::Values(cap::CgroupVersion::v1, cap::CgroupVersion::v2),
                         [](const auto& info) {
                             return info.param == cap::CgroupVersion::v1 ? "v1" : "v2";
                         });

TEST(CapacityJson, HoldsThePolicyTheCgroupsAndTheLogs) {
    TempDir tmp;
    const RunDir dir = RunDir::open(tmp.path() / "run");
    RunState s = state_of(3, dir.path());
    s.settings.mem_mib = 384;
    s.cgroup_run = "/sys/fs/cgroup/partlink/abc";
    for (auto& p : s.partitions)
        p.cgroup = CgroupRecord{*s.cgroup_run / p.name, 100'000, 100, 10'000, 400'000};
    const auto policy = policy_of(kThree);
    const auto config = run_capacity_config(s, policy, dir);
    EXPECT_EQ(config.audit_log, dir.path() / "wlm-audit.jsonl");
    EXPECT_EQ(config.chart_log, dir.path() / "wlm-chart.jsonl");
    EXPECT_EQ(config.cgroups.at("vm2"), "/sys/fs/cgroup/partlink/abc/vm2");
    // Every partition's balloon: partlinkd's own QMP socket and the boot RAM.
    ASSERT_EQ(config.balloons.size(), 3u);
    EXPECT_EQ(config.balloons.at("vm3").qmp, dir.path() / "vm3.hv.qmp");
    EXPECT_EQ(config.balloons.at("vm3").boot_mib, 384u);

    const fs::path file = write_run_capacity_config(dir, config);
    EXPECT_EQ(file, dir.path() / "capacity.json");
    EXPECT_EQ(dir.capacity_config(), file);
    std::ifstream in(file);
    const auto doc = nlohmann::json::parse(in);
    EXPECT_EQ(doc["policy"]["privileged"], "vm2");
    EXPECT_EQ(doc["policy"]["partitions"].size(), 3u);
    EXPECT_EQ(doc["cgroups"]["vm1"], "/sys/fs/cgroup/partlink/abc/vm1");
    EXPECT_EQ(doc["audit_log"], (dir.path() / "wlm-audit.jsonl").string());
    EXPECT_EQ(doc["chart_log"], (dir.path() / "wlm-chart.jsonl").string());
    EXPECT_DOUBLE_EQ(doc["host_cpus"].get<double>(), 4.0);

    // And partlinkd reads it back as it was meant.
    const auto back = cap::load_run_config(file);
    EXPECT_EQ(back.policy.privileged, "vm2");
    EXPECT_EQ(back.cgroups, config.cgroups);
    EXPECT_EQ(back.audit_log, config.audit_log);
    EXPECT_EQ(back.chart_log, config.chart_log);
    EXPECT_EQ(back.balloons, config.balloons);
    ASSERT_TRUE(back.policy.find("vm1"));
    EXPECT_EQ(back.policy.find("vm1")->min.units, 20'000);
    EXPECT_EQ(back.policy.find("vm1")->weight, 50u);
}

TEST(CapacityJson, EveryPartitionNeedsAPlannedCgroup) {
    TempDir tmp;
    const RunDir dir = RunDir::open(tmp.path());
    RunState s = state_of(3, dir.path());
    EXPECT_THROW(run_capacity_config(s, policy_of(kThree), dir), Error);
}

TEST(WlmLogs, ANewRunSetsTheLogsOfTheLastOneAside) {
    TempDir tmp;
    const RunDir dir = RunDir::open(tmp.path());
    set_aside_wlm_logs(dir); // nothing there: nothing to do
    std::ofstream(dir.wlm_audit_log()) << "audit\n";
    std::ofstream(dir.wlm_chart_log()) << "chart\n";
    set_aside_wlm_logs(dir);
    EXPECT_FALSE(fs::exists(dir.wlm_audit_log()));
    EXPECT_FALSE(fs::exists(dir.wlm_chart_log()));
    std::ifstream audit(dir.path() / "wlm-audit.previous.jsonl");
    std::string line;
    EXPECT_TRUE(std::getline(audit, line) && line == "audit");
    EXPECT_TRUE(fs::exists(dir.path() / "wlm-chart.previous.jsonl"));
}

TEST(UpPolicyOption, LoadedAndChecked) {
    TempDir tmp;
    const fs::path file = tmp.path() / "policy.json";
    std::ofstream(file) << kThree;
    UpArgs a;
    a.vms = "3";
    a.policy = file.string();
    const UpOptions o = validate_up_args(a, 4);
    ASSERT_TRUE(o.policy && o.policy_file);
    EXPECT_EQ(*o.policy_file, file);
    EXPECT_EQ(o.policy->privileged, "vm2");
    EXPECT_DOUBLE_EQ(o.policy->host_cpus, 4.0);
    EXPECT_FALSE(validate_up_args(UpArgs{}, 4).policy);
}

std::string up_usage_error(const UpArgs& a, int host_cpus = 4) {
    try {
        validate_up_args(a, host_cpus);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(UpPolicyOption, UsageErrors) {
    TempDir tmp;
    const fs::path file = tmp.path() / "policy.json";
    std::ofstream(file) << kThree;
    UpArgs a;
    a.vms = "3";
    a.policy = file.string();
    a.no_cgroups = true;
    EXPECT_EQ(up_usage_error(a),
              "--policy sets the partitions' CPU cgroups; it does not go with --no-cgroups");
    a.no_cgroups = false;

    a.vms = "2";
    EXPECT_NE(up_usage_error(a).find("does not fit a run of 2 partitions"), std::string::npos);
    a.vms = "3";

    // More entitlement than this host has.
    EXPECT_NE(up_usage_error(a, 2).find("--policy: invalid capacity policy " + file.string()),
              std::string::npos)
        << up_usage_error(a, 2);

    a.policy = (tmp.path() / "missing.json").string();
    EXPECT_EQ(up_usage_error(a), "--policy " + *a.policy + ": no such file");
    a.policy = "";
    EXPECT_EQ(up_usage_error(a), "--policy must not be empty");
    std::ofstream(tmp.path() / "bad.json") << "{ not json";
    a.policy = (tmp.path() / "bad.json").string();
    EXPECT_EQ(up_usage_error(a).rfind("--policy: invalid capacity policy ", 0), 0u);
}

TEST(UpPolicyOption, TheFabricConfigMustNameThePrivilegedPartition) {
    TempDir tmp;
    const fs::path policy = tmp.path() / "policy.json";
    std::ofstream(policy) << kThree;
    const fs::path same = tmp.path() / "same.json";
    std::ofstream(same) << R"({"wlm": "vm2"})";
    const fs::path other = tmp.path() / "other.json";
    std::ofstream(other) << R"({"wlm": "vm1"})";
    const fs::path none = tmp.path() / "none.json";
    std::ofstream(none) << R"({"networks": {"a": ["vm1", "vm2", "vm3"]}})";
    UpArgs a;
    a.vms = "3";
    a.policy = policy.string();
    a.fabric_config = same.string();
    EXPECT_EQ(validate_up_args(a, 4).wlm, "vm2");
    a.fabric_config = other.string();
    EXPECT_NE(up_usage_error(a).find("makes vm2 the WLM partition but --fabric-config " +
                                     other.string() + " names vm1"),
              std::string::npos)
        << up_usage_error(a);
    a.fabric_config = none.string();
    EXPECT_NE(up_usage_error(a).find("names none"), std::string::npos) << up_usage_error(a);
}

} // namespace
} // namespace partlink
