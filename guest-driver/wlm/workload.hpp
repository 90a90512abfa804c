// The demo workload (issue 4): `plwlm serve`, a TCP server that spends a fixed
// amount of CPU on every request, and `plwlm load`, which keeps it busy and
// counts what it serves per second. Served throughput is CPU-bound, so a
// bigger CPU cap on the guest serves more: what the WLM manager's shifts
// should show. The pure part (work, line protocol, accounting) is work.*.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "net.hpp"
#include "unique_fd.hpp"
#include "work.hpp"

namespace plwlm {

struct ServeOptions {
    std::string listen; // [ADDR:]PORT
    unsigned work = kDefaultWork;
    int max_connections = 64;
    double duration = 0;  // stop after this many seconds; 0: run until signalled
    bool verbose = false; // one line per second
};

struct ServeStats {
    std::uint64_t served = 0;   // OK answers
    std::uint64_t rejected = 0; // ERR answers to bad lines (no work done)
    std::uint64_t accepted = 0; // connections
    std::uint64_t busy = 0;     // connections turned away beyond max_connections
    std::uint64_t overlong = 0; // connections closed after an overlong line
    double elapsed = 0;         // seconds
};

struct LoadOptions {
    std::string to; // HOST:PORT
    int connections = 4;
    double duration = 0; // seconds; 0: until signalled
    double rate = 0;     // requests/s over all connections; 0: closed loop, as fast as answered
    double timeout = 5;  // seconds for a connect or an answer
    bool json = false;
};

struct LoadResult {
    LoadSeries series;
    double elapsed = 0;
};

// A listening TCP socket, non-blocking, SO_REUSEADDR (a restarted server
// gets its port back at once).
class TcpListener {
public:
    static TcpListener bind(const Endpoint& local, int backlog = 64);
    int fd() const noexcept { return fd_.get(); }
    Endpoint local() const;

private:
    explicit TcpListener(partlink::UniqueFd fd)
        : fd_(std::move(fd)) {}
    partlink::UniqueFd fd_;
};

// The server's poll loop, single-threaded, until `stop_fd` is readable or
// options.duration has passed. With `verbose`, one line per second on `out`.
ServeStats serve(const TcpListener& listener, const ServeOptions& options, int stop_fd,
                 std::ostream& out);

// The load generator's poll loop, until `stop_fd` is readable or
// options.duration has passed: a line per second on `out`, not the summary.
LoadResult load(const LoadOptions& options, int stop_fd, std::ostream& out);

// The commands: options checked, SIGINT/SIGTERM stop them, a summary at the
// end. run_load fails (exit 1) when not a single request was served.
int run_serve(const ServeOptions& options);
int run_load(const LoadOptions& options);

} // namespace plwlm
