#include "daemon.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <glib-unix.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capacity/run_config.hpp"
#include "config.hpp"
#include "error.hpp"
#include "hello.hpp"
#include "mailbox.hpp"

namespace partlink::daemon {

namespace {

using fabric::ProtocolError;

constexpr guint kHelloTimeoutSeconds = 10;
constexpr guint kSweepSeconds = 2;
constexpr std::size_t kMaxConnections = 256;
// A device that does not read its messages is disconnected rather than let
// the daemon's memory grow.
constexpr std::size_t kMaxQueued = 1024;
constexpr std::size_t kMaxMailboxPending = 4;

// Two daemons must not share a segment.  The lock is on an open file
// description of our own, never one handed to a device, so that it dies
// with this process.
UniqueFd lock_segment(const std::filesystem::path& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        throw_errno("cannot open fabric segment " + path.string());
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            throw Error("another partlinkd is using the fabric segment " + path.string());
        throw_errno("cannot lock fabric segment " + path.string());
    }
    return fd;
}

// Each port holds up to PARTLINK_MAX_FDS fds, and every queued PEER_UP
// duplicates them: use all the fds the hard limit allows.
void raise_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &limit);
    }
}

} // namespace

void log_line(const std::string& message) {
    std::string line = "partlinkd: " + message + "\n";
    // One write per line, so that lines never interleave.
    [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

fabric::Config load_config(const Options& options) {
    return options.config ? fabric::Config::load(*options.config) : fabric::Config();
}

CapacityService load_capacity(const Options& options, const fabric::Config& config) {
    if (!options.capacity)
        return CapacityService("capacity management is off: partlinkd runs without --capacity "
                               "(`partlink up` without --no-cgroups gives it one)");
    auto run = capacity::load_run_config(*options.capacity);
    if (config.wlm() != run.policy.privileged)
        throw Error("the fabric config names " + config.wlm().value_or("no partition") +
                    " as the WLM partition but the capacity policy names " + run.policy.privileged +
                    ": make them agree");
    std::shared_ptr<capacity::CpuController> controller;
    try {
        controller = capacity::make_cpu_controller(capacity::detect_cpu_hierarchy());
        controller->check_access();
    } catch (const std::exception& e) {
        throw Error(std::string("cannot enforce capacity directives: ") + e.what() +
                    " (run partlinkd as root, or without --capacity)");
    }
    CapacityService service(std::move(run), std::move(controller));
    service.set_log(log_line);
    return service;
}

Daemon::Daemon(const Options& options, fabric::Config config, CapacityService capacity)
    : segment_(fabric::Segment::open_or_create(options.segment))
    , segment_lock_(lock_segment(options.segment))
    , segments_(options.segments, options.segments_state, config)
    , broker_(segment_, std::move(config), log_line, &segments_.store())
    , capacity_(std::move(capacity))
    , mailbox_(capacity_, [this](MailboxWorker::Done done) { mailbox_done(std::move(done)); })
    , listener_(options.socket) {
    raise_fd_limit();
    fabric::set_lock_log([](std::string_view message) { log_line(std::string(message)); });
    if (segment_.created()) {
        log_line("created fabric segment " + segment_.path().string());
    } else {
        unsigned up = 0;
        for (unsigned i = 0; i < PARTLINK_FABRIC_PORTS; ++i)
            up += segment_.port(i).state == PARTLINK_PORT_UP;
        log_line("reusing fabric segment " + segment_.path().string() + " (" + std::to_string(up) +
                 " ports up)");
        broker_.sweep(); // nobody is connected yet: nobody to tell
    }
    if (const auto& wlm = broker_.config().wlm())
        log_line("WLM partition: " + *wlm);
    if (segments_.enabled()) {
        const auto& table = segments_.store().table();
        log_line("shared segments from " + options.segments->string() + ": " +
                 std::to_string(table.segments().size()) + ", " +
                 segments::format_size(table.total_size()) + " (SIGHUP reloads)");
    }
    write_segment_state();
    if (capacity_.enabled())
        log_line(capacity_.start_note() + ", total " +
                 std::to_string(capacity_.pool()->total().cpus()) + " CPU");

    std::signal(SIGPIPE, SIG_IGN);
    accept_watch_.reset(g_unix_fd_add(listener_.fd(), G_IO_IN, on_accept, this));
    sigterm_.reset(g_unix_signal_add(SIGTERM, on_sigterm, this));
    sigint_.reset(g_unix_signal_add(SIGINT, on_sigint, this));
    sighup_.reset(g_unix_signal_add(SIGHUP, on_sighup, this));
    sweeper_.reset(g_timeout_add_seconds(kSweepSeconds, on_sweep, this));
}

Daemon::~Daemon() = default;

int Daemon::run() {
    log_line("listening on " + listener_.path().string());
    loop_.run();
    log_line(std::string(signal_ == SIGINT ? "SIGINT" : "SIGTERM") +
             ": exiting; the ports stay as they are until devices register again");
    return kExitOk;
}

gboolean Daemon::on_sigterm(gpointer data) {
    auto* self = static_cast<Daemon*>(data);
    self->signal_ = SIGTERM;
    self->loop_.quit();
    return G_SOURCE_CONTINUE;
}

gboolean Daemon::on_sighup(gpointer data) {
    static_cast<Daemon*>(data)->reload_segments();
    return G_SOURCE_CONTINUE;
}

void Daemon::reload_segments() {
    std::vector<std::string> changes;
    try {
        auto applied = segments_.reload(changes);
        for (const auto& change : changes)
            log_line("segments: " + change);
        log_line("segments reloaded: " + std::to_string(changes.size()) + " change" +
                 (changes.size() == 1 ? "" : "s"));
        deliver(broker_.segments_changed(applied));
        write_segment_state();
    } catch (const Error& e) {
        log_line(std::string("segments: reload refused, the table stays as it was: ") + e.what());
        write_segment_state(e.what());
    }
}

void Daemon::write_segment_state(const std::string& error) {
    try {
        segments_.write_state(broker_, error);
    } catch (const Error& e) {
        log_line(e.what());
    }
}

gboolean Daemon::on_sigint(gpointer data) {
    auto* self = static_cast<Daemon*>(data);
    self->signal_ = SIGINT;
    self->loop_.quit();
    return G_SOURCE_CONTINUE;
}

gboolean Daemon::on_sweep(gpointer data) {
    auto* self = static_cast<Daemon*>(data);
    try {
        self->deliver(self->broker_.sweep());
    } catch (const Error& e) {
        log_line(e.what());
    }
    return G_SOURCE_CONTINUE;
}

gboolean Daemon::on_accept(gint, GIOCondition, gpointer data) {
    static_cast<Daemon*>(data)->accept_all();
    return G_SOURCE_CONTINUE;
}

gboolean Daemon::on_resume_accept(gpointer data) {
    auto* self = static_cast<Daemon*>(data);
    self->accept_retry_.release();
    self->accept_watch_.reset(g_unix_fd_add(self->listener_.fd(), G_IO_IN, on_accept, self));
    return G_SOURCE_REMOVE;
}

void Daemon::accept_all() {
    for (;;) {
        UniqueFd fd(::accept4(listener_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            const int err = errno;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            log_line(errno_message("accept", err));
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                // Out of fds: stop accepting for a second instead of spinning.
                accept_watch_.reset();
                accept_retry_.reset(g_timeout_add_seconds(1, on_resume_accept, this));
            }
            return;
        }
        PeerCredentials cred;
        try {
            cred = peer_credentials(fd.get());
        } catch (const Error& e) {
            log_line(e.what());
            continue;
        }
        if (connections_.size() >= kMaxConnections) {
            log_line("refused a connection from pid " + std::to_string(cred.pid) + ": already " +
                     std::to_string(kMaxConnections) + " connections");
            continue;
        }
        auto connection = std::make_unique<Connection>();
        Connection& c = *connection;
        c.daemon = this;
        c.id = next_id_++;
        c.fd = std::move(fd);
        c.cred = cred;
        c.who = "a device (pid " + std::to_string(cred.pid) + ")";
        connections_.emplace(c.id, std::move(connection));

        const uid_t self = ::geteuid();
        if (cred.uid != self && cred.uid != 0) {
            deliver(broker_.refuse(c.id,
                                   "a connection from uid " + std::to_string(cred.uid) + " (pid " +
                                       std::to_string(cred.pid) + ")",
                                   "only uid " + std::to_string(self) +
                                       " (or root) may use this partlinkd"));
            continue;
        }
        c.in_watch.reset(g_unix_fd_add(
            c.fd.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR), on_readable, &c));
        c.hello_timer.reset(g_timeout_add_seconds(kHelloTimeoutSeconds, on_hello_timeout, &c));
    }
}

gboolean Daemon::on_hello_timeout(gpointer data) {
    auto& c = *static_cast<Connection*>(data);
    c.hello_timer.release();
    c.daemon->deliver(c.daemon->broker_.refuse(
        c.id, c.who, "no HELLO within " + std::to_string(kHelloTimeoutSeconds) + " s"));
    return G_SOURCE_REMOVE;
}

gboolean Daemon::on_readable(gint, GIOCondition, gpointer data) {
    auto& c = *static_cast<Connection*>(data);
    c.daemon->read_from(c);
    return G_SOURCE_CONTINUE;
}

void Daemon::read_from(Connection& c) {
    while (!c.closing) {
        fabric::Received message;
        fabric::MessageReader::Status status;
        try {
            status = c.reader.read(c.fd.get(), message);
        } catch (const ProtocolError& e) {
            deliver(broker_.refuse(c.id, c.who, e.what()));
            return;
        } catch (const Error& e) {
            log_line(c.who + ": " + e.what());
            close_later(c);
            return;
        }
        switch (status) {
        case fabric::MessageReader::Status::again:
            return;
        case fabric::MessageReader::Status::eof:
            close_later(c);
            return;
        case fabric::MessageReader::Status::message:
            handle(c, std::move(message));
            break;
        }
    }
}

void Daemon::handle(Connection& c, fabric::Received message) {
    if (broker_.port_of(c.id) && message.type == PARTLINK_MSG_MBOX_REQUEST) {
        mailbox_request(c, message);
        return;
    }
    if (broker_.port_of(c.id)) {
        deliver(broker_.refuse(c.id, c.who,
                               "unexpected " + fabric::message_name(message.type) +
                                   ": this device is already registered"));
        return;
    }
    if (message.type != PARTLINK_MSG_HELLO) {
        deliver(broker_.refuse(c.id, c.who,
                               "expected HELLO, got " + fabric::message_name(message.type)));
        return;
    }
    fabric::Hello hello;
    try {
        hello = fabric::check_hello(std::move(message));
    } catch (const ProtocolError& e) {
        deliver(broker_.refuse(c.id, c.who, e.what()));
        return;
    } catch (const Error& e) {
        deliver(broker_.refuse(c.id, c.who, std::string("HELLO: ") + e.what()));
        return;
    }
    c.hello_timer.reset();
    c.who = fabric::describe(hello.name, hello.port.port, c.cred.pid);
    try {
        deliver(broker_.hello(c.id, c.cred.pid, std::move(hello)));
    } catch (const Error& e) {
        // A lock that cannot be recovered, for one.
        deliver(broker_.refuse(c.id, c.who, e.what()));
    }
    write_segment_state();
    if (const auto identity = broker_.identity_of(c.id); identity && capacity_.enabled()) {
        MailboxWorker::Job job;
        job.client = c.id;
        job.sender = {identity->name, (identity->flags & PARTLINK_PORT_WLM) != 0};
        job.reapply = true;
        mailbox_.submit(std::move(job));
    }
}

void Daemon::mailbox_request(Connection& c, const fabric::Received& message) {
    if (message.payload.size() != sizeof(partlink_msg_mbox_request) || !message.fds.empty()) {
        deliver(broker_.refuse(
            c.id, c.who,
            "MBOX_REQUEST of " + std::to_string(message.payload.size()) + " bytes (and " +
                std::to_string(message.fds.size()) + " fds), expected " +
                std::to_string(sizeof(partlink_msg_mbox_request)) + " bytes and none"));
        return;
    }
    partlink_msg_mbox_request request;
    std::memcpy(&request, message.payload.data(), sizeof request);
    // A device has one request in flight; more are left over from requests
    // it gave up on.  Beyond a few, the guest is flooding the worker.
    if (mailbox_.pending(c.id) >= kMaxMailboxPending) {
        fabric::Outgoing busy{
            c.id,
            fabric::make_mbox_answer(
                request.seq, make_answer(PARTLINK_MBOX_REFUSED, 0, "too many requests in flight")),
            false};
        deliver({std::move(busy)});
        return;
    }
    const auto identity = broker_.identity_of(c.id);
    MailboxWorker::Job job;
    job.client = c.id;
    job.seq = request.seq;
    job.sender = {identity->name, (identity->flags & PARTLINK_PORT_WLM) != 0};
    std::memcpy(job.request.data(), &request.request, sizeof request.request);
    mailbox_.submit(std::move(job));
}

void Daemon::mailbox_done(MailboxWorker::Done done) {
    if (!done.log.empty())
        log_line(done.log);
    if (done.reapply)
        return;
    std::vector<fabric::Outgoing> answer;
    answer.push_back({done.client, fabric::make_mbox_answer(done.seq, done.answer), false});
    deliver(std::move(answer)); // dropped if the device went away meanwhile
}

void Daemon::deliver(std::vector<fabric::Outgoing> messages) {
    for (auto& outgoing : messages) {
        auto it = connections_.find(outgoing.to);
        if (it == connections_.end() || it->second->closing)
            continue;
        Connection& c = *it->second;
        if (c.out.size() >= kMaxQueued) {
            log_line(c.who + " does not read its messages; disconnecting it");
            close_later(c);
            continue;
        }
        try {
            c.out.push(outgoing.message);
        } catch (const Error& e) {
            log_line(c.who + ": " + e.what() + "; disconnecting it");
            close_later(c);
            continue;
        }
        if (outgoing.close_after) {
            // Nothing more from it; close once the REFUSE is out.
            c.closing = true;
            c.in_watch.reset();
            c.hello_timer.reset();
        }
        flush(c);
    }
}

void Daemon::flush(Connection& c) {
    bool done;
    try {
        done = c.out.flush(c.fd.get());
    } catch (const Error& e) {
        if (!c.closing)
            log_line(c.who + ": " + e.what());
        close_later(c);
        return;
    }
    if (done) {
        c.out_watch.reset();
        if (c.closing)
            close_later(c);
    } else if (!c.out_watch) {
        c.out_watch.reset(g_unix_fd_add(c.fd.get(),
                                        static_cast<GIOCondition>(G_IO_OUT | G_IO_ERR | G_IO_HUP),
                                        on_writable, &c));
    }
}

gboolean Daemon::on_writable(gint, GIOCondition, gpointer data) {
    auto& c = *static_cast<Connection*>(data);
    c.daemon->flush(c);
    return G_SOURCE_CONTINUE;
}

void Daemon::close_later(Connection& c) {
    // Connections are destroyed outside of their own callbacks, and after the
    // broker call that made the messages which led here.
    c.closing = true;
    c.in_watch.reset();
    c.out_watch.reset();
    c.hello_timer.reset();
    doomed_.insert(c.id);
    if (!reaper_)
        reaper_.reset(g_idle_add(on_reap, this));
}

gboolean Daemon::on_reap(gpointer data) {
    auto* self = static_cast<Daemon*>(data);
    self->reaper_.release();
    self->reap();
    return G_SOURCE_REMOVE;
}

void Daemon::reap() {
    while (!doomed_.empty()) {
        auto id = *doomed_.begin();
        doomed_.erase(doomed_.begin());
        connections_.erase(id);
        try {
            deliver(broker_.disconnect(id));
        } catch (const Error& e) {
            log_line(e.what());
        }
        write_segment_state();
    }
}

} // namespace partlink::daemon
