// What partlinkd does with a mailbox request, on a fake cgroup tree of
// either version: authorization by the sending port, evaluation, enforcement
// and an audit line for every directive; REPORTs into the chart log; the
// pool's caps taken over from the cgroups and reapplied on registration.
#include <cstring>
#include <endian.h>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "capacity_service.hpp"
#include "fake_cgroup.hpp"
#include "mailbox.hpp"

namespace partlink::daemon {
namespace {

namespace cap = partlink::capacity;
namespace fs = std::filesystem;
using cap::testing::FakeHost;
using cap::testing::read_file;
using cap::testing::write_file;
using ::testing::HasSubstr;

cap::CpuAmount cpus(double value) {
    return cap::CpuAmount::from_cpus(value);
}

// vm1 (WLM) 0.5 [0.1, 1], vm2 0.75 [0.25, 2], vm3 0.75 [0.5, 1.5] on 2 CPUs.
cap::Policy three_partitions() {
    cap::Policy policy;
    policy.host_cpus = 2;
    policy.privileged = "vm1";
    policy.partitions = {{"vm1", cpus(0.5), cpus(0.1), cpus(1), 100, {}},
                         {"vm2", cpus(0.75), cpus(0.25), cpus(2), 100, {}},
                         {"vm3", cpus(0.75), cpus(0.5), cpus(1.5), 100, {}}};
    return policy;
}

using Bytes = std::array<std::uint8_t, sizeof(partlink_mbox_request)>;

Bytes to_bytes(const partlink_mbox_request& request) {
    Bytes bytes;
    std::memcpy(bytes.data(), &request, sizeof request);
    return bytes;
}

void put_name(char (&field)[PARTLINK_NAME_LEN], const std::string& name) {
    std::memset(field, 0, sizeof field);
    std::memcpy(field, name.data(), std::min(name.size(), sizeof field));
}

Bytes set_cpu(const std::string& target, std::int64_t micro, const std::string& donor = "") {
    partlink_mbox_request r{};
    r.op = htole32(PARTLINK_MBOX_OP_SET_CPU);
    put_name(r.target, target);
    put_name(r.donor, donor);
    r.value = htole64(static_cast<std::uint64_t>(micro));
    return to_bytes(r);
}

Bytes set_memory(const std::string& target, std::int64_t mib) {
    partlink_mbox_request r{};
    r.op = htole32(PARTLINK_MBOX_OP_SET_MEMORY);
    put_name(r.target, target);
    r.value = htole64(static_cast<std::uint64_t>(mib));
    return to_bytes(r);
}

Bytes report(const std::string& target, std::uint32_t state = PARTLINK_CHART_LOW) {
    partlink_mbox_request r{};
    r.op = htole32(PARTLINK_MBOX_OP_REPORT);
    put_name(r.target, target);
    r.velocity = htole64(1'120'000);
    r.trend = htole64(1'300'000);
    r.ewma = htole64(static_cast<std::uint64_t>(std::int64_t{-200'000}));
    r.lower_limit = htole64(static_cast<std::uint64_t>(PARTLINK_MBOX_UNDEFINED));
    r.upper_limit = htole64(150'000);
    r.cpu = htole64(430'000);
    r.chart_state = htole32(state);
    return to_bytes(r);
}

std::uint32_t result_of(const partlink_mbox_answer& a) {
    return le32toh(a.result);
}
std::int64_t value_of(const partlink_mbox_answer& a) {
    return static_cast<std::int64_t>(le64toh(a.value));
}
std::string reason_of(const partlink_mbox_answer& a) {
    EXPECT_EQ(a.reason[sizeof a.reason - 1], '\0');
    return std::string(a.reason, strnlen(a.reason, sizeof a.reason));
}

// A guest balloon that is at its target as soon as it is set.
class InstantBalloon : public cap::Balloon {
public:
    explicit InstantBalloon(std::uint64_t& bytes)
        : bytes_(bytes) {}
    void set_target(std::uint64_t bytes) override { bytes_ = bytes; }
    std::uint64_t actual() override { return bytes_; }

private:
    std::uint64_t& bytes_;
};

const Sender kWlm{"vm1", true};
const Sender kNotWlm{"vm2", false};

class CapacityServiceTest : public ::testing::TestWithParam<cap::CgroupVersion> {
protected:
    CapacityServiceTest() {
        for (const char* name : {"vm1", "vm2", "vm3"}) {
            groups.emplace(name, cap::PartitionCgroup::create(host.controller, "run", name));
            config.cgroups.emplace(name, groups.at(name).path());
        }
        config.policy = three_partitions();
        config.audit_log = host.tmp.path() / "wlm-audit.jsonl";
        config.chart_log = host.tmp.path() / "wlm-chart.jsonl";
    }

    // The groups at the pool's entitlements, as the launcher leaves them.
    void set_entitlements() {
        for (const auto& p : config.policy.partitions)
            host.controller->set_cap(config.cgroups.at(p.name), cap::cap_for(p.entitlement));
    }

    CapacityService make_service() {
        CapacityService service(
            config, host.controller,
            {std::chrono::milliseconds(300),
             [this](auto d) {
                 slept += d;
             }},
            [this](const std::string& partition) -> std::unique_ptr<cap::Balloon> {
                balloons_opened.push_back(partition);
                if (balloon_unreachable)
                    throw Error("cannot connect to QMP socket /run/" + partition + ".hv.qmp");
                return std::make_unique<InstantBalloon>(guest_ram[partition]);
            },
            {std::chrono::milliseconds(1000), std::chrono::milliseconds(100), [](auto) {
             }});
        service.set_log([this](const std::string& line) { logged.push_back(line); });
        return service;
    }

    // The cap the group holds, in pool units (quota us at the default period).
    std::int64_t held(const std::string& partition) const {
        const auto c = host.controller->cap(config.cgroups.at(partition));
        EXPECT_TRUE(c.quota_us) << partition << " is unlimited";
        EXPECT_EQ(c.period_us, cap::kDefaultPeriodUs);
        return c.quota_us ? static_cast<std::int64_t>(*c.quota_us) : -1;
    }

    std::vector<cap::AuditRecord> audit() const {
        if (!fs::exists(config.audit_log))
            return {};
        auto contents = cap::read_audit_log(config.audit_log);
        EXPECT_TRUE(contents.problems.empty()) << contents.problems.front();
        return contents.records;
    }

    std::vector<cap::ChartRecord> charts() const {
        auto contents = cap::read_chart_log(config.chart_log);
        EXPECT_TRUE(contents.problems.empty()) << contents.problems.front();
        return contents.records;
    }

    FakeHost host{GetParam()};
    std::map<std::string, cap::PartitionCgroup> groups;
    cap::RunCapacityConfig config;
    std::chrono::milliseconds slept{0};
    std::vector<std::string> logged;
    std::map<std::string, std::uint64_t> guest_ram; // bytes, by partition
    std::vector<std::string> balloons_opened;
    bool balloon_unreachable = false;
};

TEST_P(CapacityServiceTest, SetMemoryMovesTheBalloonAndIsAudited) {
    config.balloons = {{"vm2", {"/run/vm2.hv.qmp", 512}}};
    config.policy.partitions[1].memory = cap::MemoryTarget{128, 384};
    guest_ram["vm2"] = 512 * cap::kMib;
    auto service = make_service();

    auto answer = service.handle(kWlm, set_memory("vm2", 256));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED))
        << reason_of(answer);
    EXPECT_EQ(value_of(answer), 256);
    EXPECT_EQ(guest_ram["vm2"], 256 * cap::kMib);
    answer = service.handle(kWlm, set_memory("vm2", 100'000));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_CLAMPED));
    EXPECT_EQ(value_of(answer), 384);
    EXPECT_THAT(reason_of(answer), HasSubstr("100000 MiB is above vm2's maximum 384 MiB"));
    EXPECT_EQ(guest_ram["vm2"], 384 * cap::kMib);

    auto records = audit();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].memory_mib, 256);
    ASSERT_TRUE(records[0].balloon);
    EXPECT_EQ(records[0].balloon->before_mib, 512u);
    EXPECT_EQ(records[0].balloon->actual_mib, 256u);
    EXPECT_TRUE(records[0].balloon->reached);
    EXPECT_EQ(records[1].result, cap::AuditResult::clamped);
    EXPECT_EQ(records[1].balloon->before_mib, 256u);

    // Not from another partition, not beyond reason, not for a partition
    // without a balloon; none of them touches one.
    balloons_opened.clear();
    EXPECT_THAT(reason_of(service.handle(kNotWlm, set_memory("vm2", 256))),
                HasSubstr("not the WLM partition"));
    EXPECT_THAT(reason_of(service.handle(kWlm, set_memory("vm2", -5))),
                HasSubstr("memory must be positive, not -5 MiB"));
    EXPECT_THAT(reason_of(service.handle(kWlm, set_memory("vm3", 256))),
                HasSubstr("no balloon control for vm3"));
    EXPECT_TRUE(balloons_opened.empty());
    records = audit();
    ASSERT_EQ(records.size(), 5u);
    EXPECT_EQ(records[2].memory_mib, 256);
    EXPECT_EQ(records[3].memory_mib, -5);
    EXPECT_EQ(records[4].result, cap::AuditResult::refused);

    // A QEMU that does not answer: failed, said, audited.
    balloon_unreachable = true;
    answer = service.handle(kWlm, set_memory("vm2", 300));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_FAILED));
    EXPECT_EQ(value_of(answer), 0);
    EXPECT_THAT(reason_of(answer), HasSubstr("cannot set vm2's balloon"));
    EXPECT_EQ(audit().back().result, cap::AuditResult::failed);
    EXPECT_EQ(slept.count(), 0) << "the CPU window is not waited for memory";
}

TEST_P(CapacityServiceTest, SetCpuIsAppliedEnforcedAndAudited) {
    set_entitlements();
    auto service = make_service();
    const auto answer = service.handle(kWlm, set_cpu("vm2", 1'000'000));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED))
        << reason_of(answer);
    EXPECT_EQ(value_of(answer), 1'000'000);
    EXPECT_THAT(reason_of(answer), HasSubstr("vm2 0.75 CPU -> 1 CPU, taken from vm1"));
    EXPECT_EQ(held("vm2"), 100'000);
    EXPECT_EQ(held("vm1") + held("vm2") + held("vm3"), 200'000);
    EXPECT_EQ(service.pool()->cap("vm2"), cpus(1));
    EXPECT_EQ(slept, std::chrono::milliseconds(300)) << "verified over the window";

    const auto records = audit();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].from, "vm1");
    EXPECT_EQ(records[0].target, "vm2");
    EXPECT_DOUBLE_EQ(records[0].cpu, 1.0);
    EXPECT_FALSE(records[0].donor);
    EXPECT_EQ(records[0].result, cap::AuditResult::applied);
    ASSERT_TRUE(records[0].verification);
    EXPECT_TRUE(records[0].verification->ok);
}

TEST_P(CapacityServiceTest, SetCpuBeyondTheMaximumIsClamped) {
    set_entitlements();
    auto service = make_service();
    // vm3's maximum is 1.5.
    const auto answer = service.handle(kWlm, set_cpu("vm3", 5'000'000));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_CLAMPED));
    EXPECT_EQ(value_of(answer), 1'500'000) << reason_of(answer);
    EXPECT_THAT(reason_of(answer), HasSubstr("5 CPU is above vm3's maximum, 1.5 CPU"));
    EXPECT_EQ(held("vm3"), 150'000);
    EXPECT_EQ(held("vm1") + held("vm2") + held("vm3"), 200'000);
    ASSERT_EQ(audit().size(), 1u);
    EXPECT_EQ(audit()[0].result, cap::AuditResult::clamped);
}

TEST_P(CapacityServiceTest, DonorGivesAlone) {
    set_entitlements();
    auto service = make_service();
    auto answer = service.handle(kWlm, set_cpu("vm2", 1'000'000, "vm3"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED))
        << reason_of(answer);
    EXPECT_EQ(held("vm1"), 50'000) << "not the donor";
    EXPECT_EQ(held("vm2"), 100'000);
    EXPECT_EQ(held("vm3"), 50'000);
    ASSERT_EQ(audit().size(), 1u);
    EXPECT_EQ(audit()[0].donor, "vm3");

    // vm3 is at its minimum: it has nothing more to give.
    answer = service.handle(kWlm, set_cpu("vm2", 1'500'000, "vm3"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_CLAMPED));
    EXPECT_EQ(value_of(answer), 1'000'000);
    EXPECT_THAT(reason_of(answer), HasSubstr("vm3 can give only 0 CPU"));

    answer = service.handle(kWlm, set_cpu("vm2", 1'000'000, "vm2"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_THAT(reason_of(answer), HasSubstr("the donor must be another partition"));
    answer = service.handle(kWlm, set_cpu("vm2", 1'000'000, "vm9"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_THAT(reason_of(answer), HasSubstr("unknown donor partition 'vm9'"));
    EXPECT_EQ(audit().size(), 4u);
    EXPECT_EQ(held("vm1") + held("vm2") + held("vm3"), 200'000);
}

TEST_P(CapacityServiceTest, RefusalsChangeNothingAndAreAudited) {
    set_entitlements();
    auto service = make_service();
    struct Case {
        Sender from;
        Bytes request;
        std::string reason;
        std::int64_t value; // the target's cap, or 0 for no such target
    };
    auto malformed = set_cpu("vm2", 1'000'000);
    malformed[offsetof(partlink_mbox_request, flags)] = 1;
    const std::vector<Case> cases = {
        {kNotWlm, set_cpu("vm2", 1'000'000), "partition vm2 is not the WLM partition", 0},
        {kWlm, set_cpu("vm9", 1'000'000), "unknown target partition 'vm9'", 0},
        {kWlm, set_cpu("vm2", -1'000'000), "must be positive", 750'000},
        {kWlm, set_cpu("vm2", 0), "must be positive", 750'000},
        {kWlm, set_cpu("vm2", 2'000'000'000), "is absurd", 750'000},
        {kWlm, set_cpu("vm2", std::numeric_limits<std::int64_t>::min()), "must be positive",
         750'000},
        {kWlm, set_cpu("vm2", std::numeric_limits<std::int64_t>::max()), "is absurd", 750'000},
        {kWlm, malformed, "malformed request: flags must be zero", 0},
        {kWlm, set_cpu("vm 2", 1'000'000), "malformed request: target 'vm 2'", 0},
        {kNotWlm, set_memory("vm2", 512), "not the WLM partition", 0},
        {kWlm, set_memory("vm2", 512), "no balloon control for vm2", 0},
        // The port's WLM flag and the policy's privileged partition agree in
        // partlinkd; should they not, the policy refuses too.
        {{"vm2", true}, set_cpu("vm2", 1'000'000), "vm2 is not WLM-privileged", 750'000},
        {{"vm2", true}, set_memory("vm2", 256), "vm2 is not WLM-privileged", 0},
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& c = cases[i];
        const auto answer = service.handle(c.from, c.request);
        EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED)) << i;
        EXPECT_THAT(reason_of(answer), HasSubstr(c.reason)) << i;
        EXPECT_EQ(value_of(answer), c.value) << i << ": " << reason_of(answer);
        const auto records = audit();
        ASSERT_EQ(records.size(), i + 1) << "case " << i << " was not audited";
        EXPECT_EQ(records.back().result, cap::AuditResult::refused);
        EXPECT_EQ(records.back().from, c.from.name);
        EXPECT_THAT(records.back().reason, HasSubstr(c.reason));
    }
    EXPECT_EQ(held("vm1"), 50'000);
    EXPECT_EQ(held("vm2"), 75'000);
    EXPECT_EQ(held("vm3"), 75'000);
    EXPECT_EQ(service.pool()->cap("vm2"), cpus(0.75));
    EXPECT_EQ(slept.count(), 0) << "nothing to verify";
}

TEST_P(CapacityServiceTest, AFloodOfRefusalsIsAnsweredButAuditedOnlyUpToItsBudget) {
    set_entitlements();
    auto service = make_service();
    for (int i = 0; i < 100; ++i) {
        const auto answer = service.handle(kNotWlm, set_cpu("vm2", 1'000'000));
        EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED)) << i;
    }
    EXPECT_EQ(audit().size(), 60u);
    // The WLM partition's directives are not held back by another's flood.
    EXPECT_EQ(result_of(service.handle(kWlm, set_cpu("vm2", 1'000'000))),
              static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    EXPECT_EQ(audit().size(), 61u);
}

TEST_P(CapacityServiceTest, PoolTotalIsConstantOverRandomDirectives) {
    set_entitlements();
    auto service = make_service();
    std::mt19937 random(42);
    const std::vector<std::string> names = {"vm1", "vm2", "vm3", "vm9"};
    std::uniform_int_distribution<std::size_t> pick(0, names.size() - 1);
    std::uniform_int_distribution<std::int64_t> micro(-500'000, 3'000'000);
    std::bernoulli_distribution with_donor(0.3), from_wlm(0.9);
    std::map<std::uint32_t, int> results;
    for (int i = 0; i < 300; ++i) {
        const auto target = names[pick(random)];
        const auto donor = with_donor(random) ? names[pick(random)] : std::string();
        const auto answer = service.handle(from_wlm(random) ? kWlm : kNotWlm,
                                           set_cpu(target, micro(random), donor));
        ++results[result_of(answer)];
        ASSERT_NE(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_FAILED))
            << reason_of(answer);
        ASSERT_EQ(service.pool()->total(), cpus(2)) << "after " << i;
        std::int64_t sum = 0;
        for (const auto& p : config.policy.partitions) {
            const auto h = held(p.name);
            ASSERT_EQ(h, service.pool()->cap(p.name).units) << p.name << " after " << i;
            ASSERT_GE(h, p.min.units);
            ASSERT_LE(h, p.max.units);
            sum += h;
        }
        ASSERT_EQ(sum, 200'000) << "after " << i;
    }
    EXPECT_GT(results[PARTLINK_MBOX_APPLIED], 0);
    EXPECT_GT(results[PARTLINK_MBOX_CLAMPED], 0);
    EXPECT_GT(results[PARTLINK_MBOX_REFUSED], 0);
    EXPECT_EQ(audit().size(), 300u);
}

TEST_P(CapacityServiceTest, AFailedWriteIsUndoneAndAnswered) {
    set_entitlements();
    auto service = make_service();
    // vm3's group vanished: the shift to vm2 cannot take from it.
    fs::remove_all(config.cgroups.at("vm3"));
    const auto answer = service.handle(kWlm, set_cpu("vm2", 1'000'000));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_FAILED));
    EXPECT_EQ(value_of(answer), 750'000) << "vm2's cap now";
    EXPECT_THAT(reason_of(answer), HasSubstr("could not apply"));
    EXPECT_EQ(held("vm1"), 50'000) << "undone";
    EXPECT_EQ(held("vm2"), 75'000);
    EXPECT_EQ(service.pool()->cap("vm2"), cpus(0.75)) << "not committed";
    ASSERT_EQ(audit().size(), 1u);
    EXPECT_EQ(audit()[0].result, cap::AuditResult::failed);
}

TEST_P(CapacityServiceTest, ReportFromTheWlmPartitionIsRecorded) {
    auto service = make_service();
    const auto answer = service.handle(kWlm, report("vm2"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    EXPECT_EQ(value_of(answer), 0);
    EXPECT_EQ(reason_of(answer), "recorded");
    service.handle(kWlm, report("vm3", PARTLINK_CHART_WARMING_UP));
    const auto records = charts();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_EQ(records[0].from, "vm1");
    EXPECT_EQ(records[0].partition, "vm2");
    EXPECT_DOUBLE_EQ(records[0].velocity.value(), 1.12);
    EXPECT_DOUBLE_EQ(records[0].trend.value(), 1.3);
    EXPECT_DOUBLE_EQ(records[0].ewma.value(), -0.2);
    EXPECT_FALSE(records[0].lower_limit) << "UNDEFINED is null";
    EXPECT_DOUBLE_EQ(records[0].upper_limit.value(), 0.15);
    EXPECT_DOUBLE_EQ(records[0].cpu.value(), 0.43);
    EXPECT_EQ(records[0].state, cap::ChartState::low);
    EXPECT_EQ(records[1].state, cap::ChartState::warming_up);
    EXPECT_TRUE(audit().empty()) << "a REPORT is no directive";
    const auto latest = cap::latest_chart_records(config.chart_log);
    EXPECT_EQ(latest.size(), 2u);
}

TEST_P(CapacityServiceTest, ReportFromAnotherPartitionOrAboutNoneIsRefused) {
    auto service = make_service();
    auto answer = service.handle(kNotWlm, report("vm2"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_THAT(reason_of(answer), HasSubstr("not the WLM partition"));
    answer = service.handle(kWlm, report("vm9"));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_THAT(reason_of(answer), HasSubstr("REPORT for unknown partition 'vm9'"));
    EXPECT_TRUE(charts().empty());
}

TEST_P(CapacityServiceTest, AnUnwritableAuditLogStillAnswersAndSaysSo) {
    set_entitlements();
    config.audit_log = "/dev/full";
    auto service = make_service();
    const auto answer = service.handle(kWlm, set_cpu("vm2", 1'000'000));
    EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    EXPECT_EQ(held("vm2"), 100'000);
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_THAT(logged[0], HasSubstr("audit log: "));
    EXPECT_THAT(logged[0], HasSubstr("not logged: "));
    EXPECT_THAT(logged[0], HasSubstr("\"target\":\"vm2\""));
}

TEST_P(CapacityServiceTest, StartsAtTheEntitlementsUnlessTheCgroupsHoldAPoolState) {
    // Fresh groups are unlimited.
    {
        auto service = make_service();
        EXPECT_EQ(service.start_note(), "capacity pool starts at the entitlements");
        EXPECT_EQ(service.pool()->cap("vm2"), cpus(0.75));
    }
    // A restarted partlinkd finds the caps a directive left.
    host.controller->set_cap(config.cgroups.at("vm1"), cap::CpuCap{40'000, 100'000});
    host.controller->set_cap(config.cgroups.at("vm2"), cap::CpuCap{100'000, 100'000});
    host.controller->set_cap(config.cgroups.at("vm3"), cap::CpuCap{60'000, 100'000});
    {
        auto service = make_service();
        EXPECT_EQ(service.start_note(), "capacity pool taken over from the cgroups' caps");
        EXPECT_EQ(service.pool()->cap("vm1"), cpus(0.4));
        EXPECT_EQ(service.pool()->cap("vm2"), cpus(1));
        EXPECT_EQ(service.pool()->cap("vm3"), cpus(0.6));
        EXPECT_EQ(service.pool()->total(), cpus(2));
    }
    // Not a pool state: a different total, one outside its bounds, another
    // period, one unlimited, one unreadable.
    const std::vector<std::pair<std::string, cap::CpuCap>> spoilers = {
        {"vm3", cap::CpuCap{70'000, 100'000}},
        {"vm3", cap::CpuCap{40'000, 100'000}},
        {"vm3", cap::CpuCap{120'000, 200'000}},
        {"vm3", cap::CpuCap::unlimited()},
    };
    for (const auto& [name, spoiler] : spoilers) {
        host.controller->set_cap(config.cgroups.at("vm2"), cap::CpuCap{100'000, 100'000});
        host.controller->set_cap(config.cgroups.at("vm1"), cap::CpuCap{40'000, 100'000});
        host.controller->set_cap(config.cgroups.at(name), spoiler);
        auto service = make_service();
        EXPECT_EQ(service.start_note(), "capacity pool starts at the entitlements")
            << spoiler.describe();
        EXPECT_EQ(service.pool()->cap("vm2"), cpus(0.75));
    }
    host.controller->set_cap(config.cgroups.at("vm3"), cap::CpuCap{60'000, 100'000});
    fs::remove_all(config.cgroups.at("vm1"));
    auto service = make_service();
    EXPECT_EQ(service.start_note(), "capacity pool starts at the entitlements");
}

TEST_P(CapacityServiceTest, ReapplyRestoresARecreatedGroupsCap) {
    set_entitlements();
    auto service = make_service();
    service.handle(kWlm, set_cpu("vm2", 1'200'000));
    ASSERT_EQ(held("vm2"), 120'000);
    // vm2 restarted: its group was recreated at its entitlement.
    host.controller->set_cap(config.cgroups.at("vm2"), cap::cap_for(cpus(0.75)));
    EXPECT_THAT(service.reapply("vm2"), HasSubstr("vm2's cgroup set to its pool cap, 1.2 CPU"));
    EXPECT_EQ(held("vm2"), 120'000);
    EXPECT_EQ(service.reapply("vm2"), "") << "already there";
    EXPECT_EQ(service.reapply("vm9"), "") << "not in the pool";
    fs::remove_all(config.cgroups.at("vm3"));
    EXPECT_THAT(service.reapply("vm3"), HasSubstr("cannot set vm3's cgroup to its pool cap"));
}

INSTANTIATE_TEST_SUITE_P(BothVersions, CapacityServiceTest,
                         ::testing::Values(cap::CgroupVersion::v1, cap::CgroupVersion::v2),
                         [](const auto& info) {
                             return info.param == cap::CgroupVersion::v1 ? "v1" : "v2";
                         });

TEST(CapacityServiceOff, RefusesEverythingSayingWhy) {
    CapacityService service("capacity management is off: no --capacity");
    EXPECT_FALSE(service.enabled());
    EXPECT_EQ(service.pool(), nullptr);
    for (const auto& request :
         {set_cpu("vm2", 1'000'000), set_memory("vm2", 512), report("vm2"), Bytes{}}) {
        const auto answer = service.handle(kWlm, request);
        EXPECT_EQ(result_of(answer), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
        EXPECT_EQ(reason_of(answer), "capacity management is off: no --capacity");
    }
    EXPECT_EQ(service.reapply("vm2"), "");
}

TEST(CapacityServiceSetup, UnopenableLogsThrow) {
    FakeHost host(cap::CgroupVersion::v1);
    cap::RunCapacityConfig config;
    config.policy = three_partitions();
    for (const char* name : {"vm1", "vm2", "vm3"})
        config.cgroups.emplace(name, host.root / "partlink" / name);
    config.audit_log = host.tmp.path() / "no" / "such" / "dir" / "audit.jsonl";
    config.chart_log = host.tmp.path() / "chart.jsonl";
    EXPECT_THROW(CapacityService(config, host.controller), Error);
    config.audit_log = host.tmp.path() / "audit.jsonl";
    config.chart_log = host.tmp.path() / "no" / "chart.jsonl";
    EXPECT_THROW(CapacityService(config, host.controller), Error);
}

TEST(ToMicroCpus, PoolUnitsAreTenMillionths) {
    EXPECT_EQ(to_micro_cpus(cpus(1.5)), 1'500'000);
    EXPECT_EQ(to_micro_cpus(cap::CpuAmount{1}), 10);
    EXPECT_EQ(to_micro_cpus({}), 0);
}

} // namespace
} // namespace partlink::daemon
