// The mailbox worker: requests handled one at a time in order, answers back
// on the main loop with their client and seq, and on destruction the request
// in progress finished and the queued ones dropped.
#include <atomic>
#include <chrono>
#include <cstring>
#include <endian.h>
#include <thread>

#include <gtest/gtest.h>

#include "fake_cgroup.hpp"
#include "mailbox_worker.hpp"

namespace partlink::daemon {
namespace {

namespace cap = partlink::capacity;
using namespace std::chrono_literals;

MailboxWorker::Job set_cpu_job(fabric::ClientId client, std::uint32_t seq, double cpus) {
    MailboxWorker::Job job;
    job.client = client;
    job.seq = seq;
    job.sender = {"vm1", true};
    partlink_mbox_request r{};
    r.op = htole32(PARTLINK_MBOX_OP_SET_CPU);
    std::memcpy(r.target, "vm2", 3);
    r.value = htole64(static_cast<std::uint64_t>(cpus * PARTLINK_MBOX_MICRO));
    std::memcpy(job.request.data(), &r, sizeof r);
    return job;
}

// Runs the default main context until `done` or 5 s.
template <typename Pred>
bool iterate_until(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        g_main_context_iteration(nullptr, FALSE);
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

struct Pool {
    Pool() {
        config.policy.host_cpus = 2;
        config.policy.privileged = "vm1";
        config.policy.partitions = {{"vm1",
                                     cap::CpuAmount::from_cpus(1),
                                     cap::CpuAmount::from_cpus(0.1),
                                     cap::CpuAmount::from_cpus(2),
                                     100,
                                     {}},
                                    {"vm2",
                                     cap::CpuAmount::from_cpus(1),
                                     cap::CpuAmount::from_cpus(0.1),
                                     cap::CpuAmount::from_cpus(2),
                                     100,
                                     {}}};
        for (const char* name : {"vm1", "vm2"}) {
            groups.emplace(name, cap::PartitionCgroup::create(host.controller, "run", name));
            config.cgroups.emplace(name, groups.at(name).path());
        }
        config.audit_log = host.tmp.path() / "audit.jsonl";
        config.chart_log = host.tmp.path() / "chart.jsonl";
    }
    cap::testing::FakeHost host{cap::CgroupVersion::v1};
    std::map<std::string, cap::PartitionCgroup> groups;
    cap::RunCapacityConfig config;
};

TEST(MailboxWorker, AnswersInOrderWithClientAndSeq) {
    Pool pool;
    CapacityService service(pool.config, pool.host.controller, {10ms, [](auto) {
                                                                }});
    std::vector<MailboxWorker::Done> answers;
    MailboxWorker worker(service, [&](MailboxWorker::Done d) { answers.push_back(std::move(d)); });
    worker.submit(set_cpu_job(7, 100, 1.5));
    worker.submit(set_cpu_job(7, 101, 0.5));
    worker.submit(set_cpu_job(8, 5, -1));
    EXPECT_GE(worker.pending(7) + worker.pending(8), 1u);
    ASSERT_TRUE(iterate_until([&] { return answers.size() == 3; }));
    EXPECT_EQ(worker.pending(7), 0u);
    EXPECT_EQ(worker.pending(8), 0u);
    EXPECT_EQ(answers[0].client, 7u);
    EXPECT_EQ(answers[0].seq, 100u);
    EXPECT_EQ(le32toh(answers[0].answer.result), static_cast<std::uint32_t>(PARTLINK_MBOX_APPLIED));
    EXPECT_EQ(static_cast<std::int64_t>(le64toh(answers[0].answer.value)), 1'500'000);
    EXPECT_TRUE(answers[0].log.empty());
    EXPECT_EQ(answers[1].seq, 101u);
    EXPECT_EQ(static_cast<std::int64_t>(le64toh(answers[1].answer.value)), 500'000);
    EXPECT_EQ(answers[2].client, 8u);
    EXPECT_EQ(le32toh(answers[2].answer.result), static_cast<std::uint32_t>(PARTLINK_MBOX_REFUSED));
    EXPECT_NE(answers[2].log.find("vm1: mailbox request refused: "), std::string::npos)
        << answers[2].log;
}

TEST(MailboxWorker, AThrowingServiceIsAFailedAnswer) {
    Pool pool;
    pool.config.chart_log = "/dev/full"; // a REPORT cannot be written
    CapacityService service(pool.config, pool.host.controller, {10ms, [](auto) {
                                                                }});
    std::vector<MailboxWorker::Done> answers;
    MailboxWorker worker(service, [&](MailboxWorker::Done d) { answers.push_back(std::move(d)); });
    auto job = set_cpu_job(1, 9, 0);
    partlink_mbox_request r{};
    r.op = htole32(PARTLINK_MBOX_OP_REPORT);
    std::memcpy(r.target, "vm2", 3);
    std::memcpy(job.request.data(), &r, sizeof r);
    worker.submit(job);
    ASSERT_TRUE(iterate_until([&] { return answers.size() == 1; }));
    EXPECT_EQ(answers[0].seq, 9u);
    EXPECT_EQ(le32toh(answers[0].answer.result), static_cast<std::uint32_t>(PARTLINK_MBOX_FAILED));
    EXPECT_NE(answers[0].log.find("mailbox request failed"), std::string::npos) << answers[0].log;
}

TEST(MailboxWorker, DestructionFinishesTheRunningRequestAndDropsTheRest) {
    Pool pool;
    std::atomic<int> started{0};
    CapacityService service(pool.config, pool.host.controller,
                            {10ms, [&](auto) {
                                 ++started;
                                 std::this_thread::sleep_for(300ms);
                             }});
    {
        MailboxWorker worker(service, [](MailboxWorker::Done) {});
        worker.submit(set_cpu_job(1, 1, 1.5));
        worker.submit(set_cpu_job(1, 2, 0.5));
        worker.submit(set_cpu_job(1, 3, 1.5));
        while (started == 0)
            std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(started, 1);
    const auto records = cap::read_audit_log(pool.config.audit_log).records;
    ASSERT_EQ(records.size(), 1u) << "queued requests were carried out after the stop";
    EXPECT_DOUBLE_EQ(records[0].cpu, 1.5);
}

} // namespace
} // namespace partlink::daemon
