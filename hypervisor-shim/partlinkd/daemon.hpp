// partlinkd's event loop: the listening socket, one connection per device,
// the broker in between, and the signals that end it.  Everything runs on
// one thread in GLib's main loop.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "broker.hpp"
#include "capacity_service.hpp"
#include "glib_handles.hpp"
#include "listener.hpp"
#include "mailbox_worker.hpp"
#include "protocol.hpp"
#include "segment.hpp"
#include "segment_service.hpp"

namespace partlink::daemon {

struct Options {
    std::filesystem::path socket;
    std::filesystem::path segment;
    std::optional<std::filesystem::path> config;
    // The run's capacity setup (capacity/run_config.hpp); without it every
    // mailbox directive is refused.
    std::optional<std::filesystem::path> capacity;
    // The shared segments' table (re-read on SIGHUP), and where to write
    // their state for `partlink segments`.
    std::optional<std::filesystem::path> segments;
    std::optional<std::filesystem::path> segments_state;
};

// One line on stderr: "partlinkd: MESSAGE".
void log_line(const std::string& message);

// The config file named in the options, or the default config.  Throws
// Error naming the file.
fabric::Config load_config(const Options& options);

// The capacity service of --capacity: the run's config, the host's CPU
// hierarchy checked for write access.  Without --capacity, a service that
// refuses every directive, saying why.  Throws Error saying what to do.
CapacityService load_capacity(const Options& options, const fabric::Config& config);

class Daemon {
public:
    // Opens (or creates) and locks the segment, frees the ports of devices
    // that died meanwhile, listens.  Throws Error.
    Daemon(const Options& options, fabric::Config config, CapacityService capacity);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Serves until SIGTERM or SIGINT.  Returns the exit status.
    int run();

private:
    struct Connection {
        Daemon* daemon = nullptr;
        fabric::ClientId id = 0;
        UniqueFd fd;
        PeerCredentials cred{};
        std::string who; // for the log
        fabric::MessageReader reader;
        fabric::OutQueue out;
        bool closing = false;
        // Sources last: removed before the fd closes.
        Source in_watch;
        Source out_watch;
        Source hello_timer;
    };

    static gboolean on_accept(gint fd, GIOCondition condition, gpointer data);
    static gboolean on_resume_accept(gpointer data);
    static gboolean on_readable(gint fd, GIOCondition condition, gpointer data);
    static gboolean on_writable(gint fd, GIOCondition condition, gpointer data);
    static gboolean on_hello_timeout(gpointer data);
    static gboolean on_reap(gpointer data);
    static gboolean on_sweep(gpointer data);
    static gboolean on_sigterm(gpointer data);
    static gboolean on_sigint(gpointer data);
    static gboolean on_sighup(gpointer data);

    void accept_all();
    void read_from(Connection& connection);
    void handle(Connection& connection, fabric::Received message);
    void mailbox_request(Connection& connection, const fabric::Received& message);
    void mailbox_done(MailboxWorker::Done done);
    void deliver(std::vector<fabric::Outgoing> messages);
    void flush(Connection& connection);
    void close_later(Connection& connection);
    void reap();
    void reload_segments();
    void write_segment_state(const std::string& error = "");

    fabric::Segment segment_;
    UniqueFd segment_lock_;
    SegmentService segments_; // before the broker, which hands out its memfds
    fabric::Broker broker_;
    CapacityService capacity_;
    MailboxWorker mailbox_; // uses capacity_ on its thread
    Listener listener_;
    MainLoop loop_;
    int signal_ = 0;
    fabric::ClientId next_id_ = 1;
    std::map<fabric::ClientId, std::unique_ptr<Connection>> connections_;
    std::set<fabric::ClientId> doomed_;
    // Sources last: removed before what their callbacks use.
    Source accept_watch_;
    Source accept_retry_;
    Source reaper_;
    Source sweeper_;
    Source sigterm_;
    Source sigint_;
    Source sighup_;
};

} // namespace partlink::daemon
