#include "run/partlinkd_control.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "run/options.hpp"
#include "text.hpp"
#include "unique_fd.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kTailLines = 20;
constexpr auto kPollInterval = 50ms;

} // namespace

std::vector<std::string>
partlinkd_argv(const fs::path& exe, const fs::path& socket, const fs::path& segment,
               const fs::path& config, const std::optional<fs::path>& capacity,
               const std::optional<std::pair<fs::path, fs::path>>& segments) {
    std::vector<std::string> argv = {exe.string(),     "--socket", socket.string(), "--segment",
                                     segment.string(), "--config", config.string()};
    if (capacity) {
        argv.push_back("--capacity");
        argv.push_back(capacity->string());
    }
    if (segments) {
        argv.push_back("--segments");
        argv.push_back(segments->first.string());
        argv.push_back("--segments-state");
        argv.push_back(segments->second.string());
    }
    return argv;
}

std::string default_fabric_config(int vms, const std::string& wlm) {
    nlohmann::ordered_json names = nlohmann::ordered_json::array();
    for (int i = 1; i <= vms; ++i)
        names.push_back(vm_name(i));
    nlohmann::ordered_json doc = {{"networks", {{"default", names}}}, {"wlm", wlm}};
    return doc.dump(2) + "\n";
}

bool cmdline_is_our_partlinkd(const std::vector<std::string>& cmdline, const fs::path& run_dir) {
    if (cmdline.size() < 2)
        return false;
    // A QEMU's -chardev names the same socket, but never as --socket.
    const std::string socket = (run_dir / "partlinkd.sock").lexically_normal().string();
    for (std::size_t i = 1; i < cmdline.size(); ++i) {
        if (cmdline[i] == "--socket" && i + 1 < cmdline.size() &&
            fs::path(cmdline[i + 1]).lexically_normal() == socket)
            return true;
        if (cmdline[i].starts_with("--socket=") &&
            fs::path(cmdline[i].substr(9)).lexically_normal() == socket)
            return true;
    }
    return false;
}

bool is_our_partlinkd(pid_t pid, const fs::path& run_dir) {
    return pid > 0 && cmdline_is_our_partlinkd(read_cmdline(pid), run_dir);
}

std::vector<pid_t> find_our_partlinkds(const RunDir& dir, const std::optional<RunState>& state) {
    std::set<pid_t> found;
    auto consider = [&](pid_t pid) {
        if (pid > 0 && pid != ::getpid() && !found.count(pid) && is_our_partlinkd(pid, dir.path()))
            found.insert(pid);
    };
    if (state && state->partlinkd && state->partlinkd->pid)
        consider(*state->partlinkd->pid);
    for (pid_t pid : list_pids())
        consider(pid);
    return {found.begin(), found.end()};
}

std::vector<DaemonStopOutcome> stop_partlinkds(const std::vector<pid_t>& pids,
                                               const fs::path& run_dir,
                                               std::chrono::milliseconds after_term,
                                               std::chrono::milliseconds after_kill) {
    struct Target {
        DaemonStopOutcome outcome;
        std::optional<PidHandle> handle;
    };
    std::vector<Target> targets;
    for (pid_t pid : pids) {
        Target t{{pid, false, ""}, PidHandle::open(pid)};
        // Identity is checked after taking the pidfd: from here on the pid
        // cannot be recycled under us.
        if (!t.handle || !is_our_partlinkd(pid, run_dir) || t.handle->exited()) {
            t.outcome.stopped = true;
            t.outcome.how = "already gone";
            t.handle.reset();
        }
        targets.push_back(std::move(t));
    }
    auto round = [&](int sig, const char* how, std::chrono::milliseconds budget) {
        for (auto& t : targets) {
            if (t.handle && !t.outcome.stopped) {
                t.outcome.how = how;
                t.handle->send_signal(sig);
            }
        }
        auto deadline = Clock::now() + budget;
        for (auto& t : targets) {
            if (!t.handle || t.outcome.stopped)
                continue;
            auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (t.handle->wait_exit(std::max(left, 0ms)))
                t.outcome.stopped = true;
        }
    };
    round(SIGTERM, "SIGTERM", after_term);
    round(SIGKILL, "SIGKILL", after_kill);

    std::vector<DaemonStopOutcome> out;
    for (auto& t : targets) {
        if (!t.outcome.stopped)
            t.outcome.how = "still running after SIGKILL (stuck in the kernel?)";
        out.push_back(std::move(t.outcome));
    }
    return out;
}

namespace {

// The proof that partlinkd serves: its socket takes a connection (a bound
// socket that does not listen yet refuses).  partlinkd drops a client that
// hangs up before its HELLO.
bool accepts_connections(const fs::path& socket) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket.string().size() >= sizeof addr.sun_path)
        return false;
    std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    return fd && ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

} // namespace

void wait_until_listening(Process& daemon, const fs::path& log, const fs::path& socket,
                          std::chrono::milliseconds timeout, const std::function<void()>& check) {
    const auto deadline = Clock::now() + timeout;
    auto failure = [&](const std::string& what) {
        return Error(trimmed("partlinkd " + what + "\n--- last " + std::to_string(kTailLines) +
                             " lines of " + log.string() + " ---\n" + tail_lines(log, kTailLines)));
    };
    while (true) {
        if (check)
            check();
        if (auto status = daemon.poll())
            throw failure(status->describe() + " before it listened on " + socket.string());
        if (accepts_connections(socket))
            return;
        if (Clock::now() >= deadline)
            throw failure("did not listen on " + socket.string() + " within " +
                          std::to_string(timeout.count() / 1000) + " s");
        std::this_thread::sleep_for(kPollInterval);
    }
}

} // namespace partlink
