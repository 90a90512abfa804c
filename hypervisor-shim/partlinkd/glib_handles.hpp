// Owning handles for the GLib objects partlinkd uses: the main loop and event
// sources (fd watches, signal handlers, timers), removed when the handle dies.
#pragma once

#include <glib.h>

#include "unique_handle.hpp"

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

struct SourceTraits {
    using Value = guint;
    static constexpr guint kNone = 0;
    static void close(guint id) noexcept { g_source_remove(id); }
};

// A source attached to the default main context.  A callback that returns
// G_SOURCE_REMOVE must release() its handle first.
using Source = UniqueHandle<SourceTraits>;

} // namespace partlink::daemon
