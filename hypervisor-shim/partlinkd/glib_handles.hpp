// Owning handles for the GLib objects partlinkd uses: the main loop and event
// sources (fd watches, signal handlers, timers), removed when the handle dies.
#pragma once

#include <glib.h>
#include <utility>

namespace partlink::daemon {

class MainLoop {
public:
    MainLoop()
        : loop_(g_main_loop_new(nullptr, FALSE)) {}
    ~MainLoop() { g_main_loop_unref(loop_); }
    MainLoop(const MainLoop&) = delete;
    MainLoop& operator=(const MainLoop&) = delete;

    void run() { g_main_loop_run(loop_); }
    void quit() { g_main_loop_quit(loop_); }

private:
    GMainLoop* loop_;
};

// A source attached to the default main context.  A callback that returns
// G_SOURCE_REMOVE must release() its handle first.
class Source {
public:
    Source() noexcept = default;
    explicit Source(guint id) noexcept
        : id_(id) {}
    Source(Source&& other) noexcept
        : id_(other.release()) {}
    Source& operator=(Source&& other) noexcept {
        if (this != &other)
            reset(other.release());
        return *this;
    }
    Source(const Source&) = delete;
    Source& operator=(const Source&) = delete;
    ~Source() { reset(); }

    explicit operator bool() const noexcept { return id_ != 0; }
    guint release() noexcept { return std::exchange(id_, 0); }
    void reset(guint id = 0) noexcept {
        if (id_ != 0)
            g_source_remove(id_);
        id_ = id;
    }

private:
    guint id_ = 0;
};

} // namespace partlink::daemon
