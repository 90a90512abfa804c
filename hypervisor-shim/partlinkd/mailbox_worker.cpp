#include "mailbox_worker.hpp"

#include <cstring>
#include <endian.h>
#include <glib-unix.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.hpp"
#include "mailbox.hpp"

namespace partlink::daemon {

MailboxWorker::MailboxWorker(CapacityService& service, OnDone on_done)
    : service_(service)
    , on_done_(std::move(on_done))
    , wakeup_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!wakeup_)
        throw_errno("eventfd for the mailbox worker");
    watch_.reset(g_unix_fd_add(wakeup_.get(), G_IO_IN, on_wakeup, this));
    thread_ = std::jthread([this](std::stop_token stop) { work(stop); });
}

MailboxWorker::~MailboxWorker() {
    thread_.request_stop();
    cv_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void MailboxWorker::submit(Job job) {
    {
        std::lock_guard lock(mutex_);
        if (!job.reapply) // a registration takes none of the device's requests
            ++in_flight_[job.client];
        jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
}

std::size_t MailboxWorker::pending(fabric::ClientId client) const {
    std::lock_guard lock(mutex_);
    const auto it = in_flight_.find(client);
    return it == in_flight_.end() ? 0 : it->second;
}

MailboxWorker::Done MailboxWorker::run(const Job& job) {
    Done done;
    done.client = job.client;
    done.seq = job.seq;
    done.reapply = job.reapply;
    if (job.reapply) {
        done.log = service_.reapply(job.sender.name);
        return done;
    }
    try {
        done.answer = service_.handle(job.sender, job.request);
    } catch (const std::exception& e) {
        // A bug or an unwritable log: the guest hears it, the daemon lives.
        done.answer = make_answer(PARTLINK_MBOX_FAILED, 0, e.what());
        done.log = job.sender.name + ": mailbox request failed: " + e.what();
    }
    const auto result = le32toh(done.answer.result);
    if (result != PARTLINK_MBOX_APPLIED && done.log.empty())
        done.log =
            job.sender.name + ": mailbox request " +
            (result == PARTLINK_MBOX_CLAMPED  ? "clamped"
             : result == PARTLINK_MBOX_FAILED ? "failed"
                                              : "refused") +
            ": " +
            std::string(done.answer.reason, strnlen(done.answer.reason, sizeof done.answer.reason));
    return done;
}

void MailboxWorker::work(std::stop_token stop) {
    for (;;) {
        Job job;
        {
            std::unique_lock lock(mutex_);
            // wait() returns the predicate: true with jobs queued even when
            // a stop was requested, and those are dropped, not started.
            if (!cv_.wait(lock, stop, [this] { return !jobs_.empty(); }) || stop.stop_requested())
                return;
            job = std::move(jobs_.front());
            jobs_.pop_front();
        }
        Done done = run(job);
        {
            std::lock_guard lock(mutex_);
            done_.push_back(std::move(done));
        }
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wakeup_.get(), &one, sizeof one);
    }
}

gboolean MailboxWorker::on_wakeup(gint fd, GIOCondition, gpointer data) {
    auto* self = static_cast<MailboxWorker*>(data);
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(fd, &count, sizeof count);
    std::deque<Done> done;
    {
        std::lock_guard lock(self->mutex_);
        done.swap(self->done_);
        for (const auto& d : done)
            if (!d.reapply && --self->in_flight_[d.client] == 0)
                self->in_flight_.erase(d.client);
    }
    for (auto& d : done)
        self->on_done_(std::move(d));
    return G_SOURCE_CONTINUE;
}

} // namespace partlink::daemon
