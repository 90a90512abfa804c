#include "workload.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>
#include <list>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <vector>

#include "clock.hpp"
#include "exit_status.hpp"
#include "signals.hpp"

namespace plwlm {
namespace {

constexpr double kForever = std::numeric_limits<double>::infinity();

using partlink::mono_now;
using partlink::wall_now;

int timeout_ms(double deadline, double now) {
    if (deadline == kForever)
        return -1;
    const double ms = std::ceil((deadline - now) * 1000);
    return static_cast<int>(std::clamp(ms, 0.0, 3600.0 * 1000));
}

void poll_until(std::vector<pollfd>& fds, double deadline) {
    if (::poll(fds.data(), fds.size(), timeout_ms(deadline, mono_now())) < 0 && errno != EINTR)
        throw_errno("poll");
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

void no_delay(int fd) {
    // One short line each way per request: never wait to coalesce.
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Sends what it can without blocking; erases what went. False when the peer
// is gone.
bool flush(int fd, std::string& pending) {
    while (!pending.empty()) {
        const auto n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            pending.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return true;
}

enum class ReadResult { ok, closed };

// Reads what is waiting, at most lines.room() bytes.
ReadResult read_into(int fd, LineBuffer& lines) {
    char buffer[1024];
    const std::size_t want = std::min(sizeof buffer, lines.room());
    if (want == 0)
        return ReadResult::ok;
    for (;;) {
        const auto n = ::recv(fd, buffer, want, MSG_DONTWAIT);
        if (n > 0) {
            lines.append({buffer, static_cast<std::size_t>(n)});
            return ReadResult::ok;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return ReadResult::ok;
        return ReadResult::closed; // EOF, reset
    }
}

// ---- serve -----------------------------------------------------------------

struct ServerConnection {
    partlink::UniqueFd fd;
    LineBuffer in;
    std::string out;
    bool close_after_out = false;
    bool dead = false;
};

void accept_all(const TcpListener& listener, std::list<ServerConnection>& connections,
                const ServeOptions& options, ServeStats& stats) {
    for (int i = 0; i < 16; ++i) {
        partlink::UniqueFd fd(
            ::accept4(listener.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                return; // out of fds or memory: try again on the next round
            throw_errno("accept");
        }
        if (connections.size() >= static_cast<std::size_t>(options.max_connections)) {
            std::string busy(kAnswerBusy);
            flush(fd.get(), busy);
            ++stats.busy;
            continue;
        }
        no_delay(fd.get());
        ++stats.accepted;
        connections.push_back({std::move(fd), LineBuffer(kMaxRequest), {}, false, false});
    }
}

// At most one request per connection and round, so that a pipelining client
// cannot starve the others; none while an answer is still unsent.
void answer_one(ServerConnection& c, const ServeOptions& options, ServeStats& stats) {
    if (c.dead || c.close_after_out || !c.out.empty())
        return;
    auto next = c.in.next();
    if (next.status == LineBuffer::Status::need_more)
        return;
    if (next.status == LineBuffer::Status::overlong) {
        c.out = kAnswerTooLong;
        c.close_after_out = true;
        ++stats.overlong;
    } else {
        c.out = answer_request(next.line, options.work);
        if (c.out.front() == 'O')
            ++stats.served;
        else
            ++stats.rejected;
    }
    if (!flush(c.fd.get(), c.out))
        c.dead = true;
}

} // namespace

TcpListener TcpListener::bind(const Endpoint& local, int backlog) {
    partlink::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        throw_errno("cannot create a TCP socket");
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const auto sa = local.sockaddr();
    if (::bind(fd.get(), reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa) != 0) {
        const int err = errno;
        std::string hint;
        if (err == EADDRINUSE)
            hint = ": another program (a server already running?) has that port; pick another "
                   "with --listen";
        else if (err == EADDRNOTAVAIL)
            hint = ": no interface has that address; is pl0 up with it?";
        throw Error(errno_message("cannot listen on " + local.str(), err) + hint);
    }
    if (::listen(fd.get(), backlog) != 0)
        throw_errno("listen on " + local.str());
    return TcpListener(std::move(fd));
}

Endpoint TcpListener::local() const {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    if (::getsockname(fd_.get(), reinterpret_cast<::sockaddr*>(&sa), &len) != 0)
        throw_errno("getsockname");
    return {ntohl(sa.sin_addr.s_addr), ntohs(sa.sin_port)};
}

ServeStats serve(const TcpListener& listener, const ServeOptions& options, int stop_fd,
                 std::ostream& out) {
    ServeStats stats;
    std::list<ServerConnection> connections;
    const double start = mono_now();
    const double end = options.duration > 0 ? start + options.duration : kForever;
    double next_tick = start + 1;
    std::uint64_t tick_served = 0, tick_rejected = 0;
    std::size_t tick_index = 0;
    std::vector<pollfd> fds;

    for (;;) {
        // A connection with a complete request and nothing unsent is ready
        // now: do not sleep in poll.
        const bool ready = std::any_of(connections.begin(), connections.end(), [](auto& c) {
            return !c.dead && !c.close_after_out && c.out.empty() && c.in.ready();
        });
        double deadline = std::min(end, options.verbose ? next_tick : kForever);
        if (ready)
            deadline = mono_now();

        fds.assign({{stop_fd, POLLIN, 0}, {listener.fd(), POLLIN, 0}});
        for (auto& c : connections) {
            short events = 0;
            if (c.in.room() > 0 && !c.close_after_out)
                events |= POLLIN;
            if (!c.out.empty())
                events |= POLLOUT;
            fds.push_back({c.fd.get(), events, 0});
        }
        poll_until(fds, deadline);
        if (fds[0].revents & POLLIN)
            break;

        auto pfd = fds.begin() + 2;
        for (auto& c : connections) {
            const auto revents = (pfd++)->revents;
            if (revents & POLLIN) {
                if (read_into(c.fd.get(), c.in) == ReadResult::closed)
                    c.dead = true;
            } else if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
                c.dead = true;
            }
            if (!c.dead && (revents & POLLOUT) && !flush(c.fd.get(), c.out))
                c.dead = true;
            if (!c.dead && c.close_after_out && c.out.empty())
                c.dead = true;
        }
        for (auto& c : connections)
            answer_one(c, options, stats);
        connections.remove_if([](const ServerConnection& c) {
            return c.dead || (c.close_after_out && c.out.empty());
        });
        if (fds[1].revents & POLLIN)
            accept_all(listener, connections, options, stats);

        const double now = mono_now();
        if (options.verbose && now >= next_tick) {
            out << "[" << ++tick_index << "] served " << stats.served - tick_served << " rejected "
                << stats.rejected - tick_rejected << " connections " << connections.size()
                << std::endl;
            tick_served = stats.served;
            tick_rejected = stats.rejected;
            next_tick = std::max(next_tick + 1, now);
        }
        if (now >= end)
            break;
    }
    stats.elapsed = mono_now() - start;
    return stats;
}

// ---- load ------------------------------------------------------------------

namespace {

struct ClientConnection {
    enum class State { waiting, connecting, idle, busy };
    State state = State::waiting;
    partlink::UniqueFd fd;
    double retry_at = 0; // when waiting
    double backoff = 0;  // the last delay; 0 after an answer
    double since = 0;    // connect or request started (for the timeout)
    LineBuffer in{128};
    std::string out;
    std::uint64_t sequence = 0;
};

class Loader {
public:
    Loader(const LoadOptions& options, std::ostream& out)
        : options_(options)
        , to_(parse_endpoint(options.to))
        , out_(out)
        , connections_(static_cast<std::size_t>(options.connections)) {}

    LoadResult run(int stop_fd);

private:
    void fail(ClientConnection& c, double now) {
        result_.series.error();
        c.fd.reset();
        c.in = LineBuffer(128);
        c.out.clear();
        c.backoff = next_backoff(c.backoff);
        c.retry_at = now + c.backoff;
        c.state = ClientConnection::State::waiting;
    }

    void start_connect(ClientConnection& c, double now);
    void finish_connect(ClientConnection& c, double now);
    void send_request(ClientConnection& c, std::size_t index, double now);
    void take_answers(ClientConnection& c, double now);
    double next_deadline(double end, double next_tick) const;
    void tick(double now);

    const LoadOptions& options_;
    Endpoint to_;
    std::ostream& out_;
    std::vector<ClientConnection> connections_;
    LoadResult result_;
    double next_send_ = 0; // with a rate
};

void Loader::start_connect(ClientConnection& c, double now) {
    c.fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!c.fd)
        return fail(c, now);
    no_delay(c.fd.get());
    const auto sa = to_.sockaddr();
    c.since = now;
    if (::connect(c.fd.get(), reinterpret_cast<const ::sockaddr*>(&sa), sizeof sa) == 0) {
        c.state = ClientConnection::State::idle;
        return;
    }
    if (errno == EINPROGRESS || errno == EINTR) {
        c.state = ClientConnection::State::connecting;
        return;
    }
    fail(c, now); // refused, unreachable: the server may be restarting
}

void Loader::finish_connect(ClientConnection& c, double now) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return fail(c, now);
    c.state = ClientConnection::State::idle;
}

void Loader::send_request(ClientConnection& c, std::size_t index, double now) {
    c.out = "req " + std::to_string(index) + " " + std::to_string(++c.sequence) + "\n";
    c.since = now;
    c.state = ClientConnection::State::busy;
    if (!flush(c.fd.get(), c.out))
        fail(c, now);
}

void Loader::take_answers(ClientConnection& c, double now) {
    for (;;) {
        auto next = c.in.next();
        if (next.status == LineBuffer::Status::need_more)
            return;
        if (next.status == LineBuffer::Status::overlong || c.state != ClientConnection::State::busy)
            return fail(c, now); // out of step with the server
        const auto answer = parse_answer(next.line);
        switch (answer.kind) {
        case ServerAnswer::Kind::ok:
            result_.series.served();
            c.backoff = 0;
            c.state = ClientConnection::State::idle;
            break;
        case ServerAnswer::Kind::error:
            if (answer.reason == "busy" || answer.reason == "too-long")
                return fail(c, now); // the server closes after these
            result_.series.error();
            c.state = ClientConnection::State::idle;
            break;
        case ServerAnswer::Kind::malformed:
            return fail(c, now);
        }
    }
}

double Loader::next_deadline(double end, double next_tick) const {
    double deadline = std::min(end, next_tick);
    for (const auto& c : connections_) {
        switch (c.state) {
        case ClientConnection::State::waiting:
            deadline = std::min(deadline, c.retry_at);
            break;
        case ClientConnection::State::connecting:
        case ClientConnection::State::busy:
            deadline = std::min(deadline, c.since + options_.timeout);
            break;
        case ClientConnection::State::idle:
            if (options_.rate > 0)
                deadline = std::min(deadline, next_send_);
            break;
        }
    }
    return deadline;
}

LoadResult Loader::run(int stop_fd) {
    const double start = mono_now();
    const double end = options_.duration > 0 ? start + options_.duration : kForever;
    double next_tick = start + 1;
    next_send_ = start;
    for (auto& c : connections_)
        c.retry_at = start;
    std::vector<pollfd> fds;

    for (;;) {
        double now = mono_now();
        for (std::size_t i = 0; i < connections_.size(); ++i) {
            auto& c = connections_[i];
            using S = ClientConnection::State;
            if (c.state == S::waiting && now >= c.retry_at)
                start_connect(c, now);
            if ((c.state == S::connecting || c.state == S::busy) &&
                now >= c.since + options_.timeout)
                fail(c, now);
            if (c.state == S::idle && (options_.rate <= 0 || now >= next_send_)) {
                send_request(c, i, now);
                if (options_.rate > 0) // at most a second of catching up
                    next_send_ = std::max(next_send_ + 1 / options_.rate, now - 1);
            }
        }

        fds.assign({{stop_fd, POLLIN, 0}});
        for (const auto& c : connections_) {
            short events = 0;
            if (c.state == ClientConnection::State::connecting || !c.out.empty())
                events |= POLLOUT;
            if (c.state == ClientConnection::State::idle ||
                c.state == ClientConnection::State::busy)
                events |= POLLIN; // an idle one too: to see the server go
            fds.push_back({c.fd ? c.fd.get() : -1, events, 0});
        }
        poll_until(fds, next_deadline(end, next_tick));
        if (fds[0].revents & POLLIN)
            break;

        now = mono_now();
        for (std::size_t i = 0; i < connections_.size(); ++i) {
            auto& c = connections_[i];
            const auto revents = fds[i + 1].revents;
            if (revents == 0 || fds[i + 1].fd < 0)
                continue;
            if (c.state == ClientConnection::State::connecting) {
                finish_connect(c, now);
                continue;
            }
            if ((revents & POLLOUT) && !flush(c.fd.get(), c.out)) {
                fail(c, now);
                continue;
            }
            if (revents & POLLIN) {
                const auto r = read_into(c.fd.get(), c.in);
                take_answers(c, now);
                if (r == ReadResult::closed && c.fd)
                    fail(c, now);
            } else if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
                fail(c, now);
            }
        }

        now = mono_now();
        while (now >= next_tick && next_tick <= end) {
            tick(next_tick);
            next_tick += 1;
        }
        if (now >= end)
            break;
    }
    result_.elapsed = mono_now() - start;
    return std::move(result_);
}

void Loader::tick(double tick_time) {
    const auto second = result_.series.close_second();
    if (options_.json)
        out_ << LoadSeries::second_json(wall_now() - (mono_now() - tick_time), second) << std::endl;
    else
        out_ << LoadSeries::second_line(result_.series.seconds().size(), second) << std::endl;
}

} // namespace

LoadResult load(const LoadOptions& options, int stop_fd, std::ostream& out) {
    if (options.connections < 1 || options.connections > 1024)
        throw UsageError("--connections must be from 1 to 1024");
    if (!(options.rate >= 0) || !std::isfinite(options.rate))
        throw UsageError("--rate must be 0 (as fast as answered) or requests per second");
    if (!(options.timeout > 0))
        throw UsageError("--timeout must be positive");
    return Loader(options, out).run(stop_fd);
}

int run_serve(const ServeOptions& options) {
    if (options.max_connections < 1)
        throw UsageError("--max-connections must be at least 1");
    const auto listener = TcpListener::bind(parse_listen(options.listen));
    StopSignals stop;
    std::cout << "plwlm serve: listening on " << listener.local().str() << ", " << options.work
              << " rounds of work per request, at most " << options.max_connections
              << " connections" << std::endl;
    const auto stats = serve(listener, options, stop.fd(), std::cout);
    if (readable(stop.fd()))
        stop.take();
    std::cout << "plwlm serve: stopped; served " << stats.served << " requests in "
              << std::round(stats.elapsed * 10) / 10 << " s, rejected " << stats.rejected
              << ", connections " << stats.accepted << " (turned away " << stats.busy
              << ", closed for overlong lines " << stats.overlong << ")" << std::endl;
    return kExitOk;
}

int run_load(const LoadOptions& options) {
    StopSignals stop;
    const auto result = load(options, stop.fd(), std::cout);
    if (readable(stop.fd()))
        stop.take();
    std::cout << result.series.summary(result.elapsed, options.json) << std::endl;
    if (result.series.total_served() == 0) {
        std::cerr << "plwlm: no request to " << options.to << " was served" << std::endl;
        return kExitFailure;
    }
    return kExitOk;
}

} // namespace plwlm
