// Runs mailbox requests off the main loop: a directive's verification
// watches cpu.stat for a few hundred milliseconds, and the fabric must not
// wait for it.  One worker thread, so requests are handled one at a time
// in arrival order; answers come back on the main loop through an eventfd.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "broker.hpp"
#include "capacity_service.hpp"
#include "glib_handles.hpp"
#include "unique_fd.hpp"

namespace partlink::daemon {

class MailboxWorker {
public:
    struct Job {
        fabric::ClientId client = 0;
        std::uint32_t seq = 0;
        Sender sender;
        // A request, or (reapply) a partition that registered again.
        bool reapply = false;
        std::array<std::uint8_t, sizeof(partlink_mbox_request)> request{};
    };
    struct Done {
        fabric::ClientId client = 0;
        std::uint32_t seq = 0;
        bool reapply = false;
        partlink_mbox_answer answer{};
        std::string log; // a line for the daemon's log, or empty
    };
    using OnDone = std::function<void(Done)>;

    // `service` is used on the worker thread only, from now on, and must
    // outlive the worker.  `on_done` runs on the main loop.
    MailboxWorker(CapacityService& service, OnDone on_done);
    // Finishes the request in progress; drops those not started.
    ~MailboxWorker();
    MailboxWorker(const MailboxWorker&) = delete;
    MailboxWorker& operator=(const MailboxWorker&) = delete;

    void submit(Job job);
    // Requests queued or running for `client` (reapply jobs not counted).
    std::size_t pending(fabric::ClientId client) const;

private:
    static gboolean on_wakeup(gint fd, GIOCondition condition, gpointer data);
    void work(std::stop_token stop);
    Done run(const Job& job);

    CapacityService& service_;
    OnDone on_done_;
    UniqueFd wakeup_;
    mutable std::mutex mutex_;
    std::condition_variable_any cv_;
    std::deque<Job> jobs_;
    std::deque<Done> done_;
    std::map<fabric::ClientId, std::size_t> in_flight_;
    Source watch_;
    std::jthread thread_; // last: stops and joins first
};

} // namespace partlink::daemon
