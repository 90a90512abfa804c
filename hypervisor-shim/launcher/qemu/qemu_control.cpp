#include "qemu/qemu_control.hpp"

#include <algorithm>
#include <map>
#include <signal.h>

#include "host/process.hpp"
#include "qmp.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Does `arg` mention a path inside `dir`?  Only at the start of the argument
// or after QEMU's option separators, so that /x/run does not match /y/x/run.
bool mentions_dir(const std::string& arg, const std::string& dir_slash) {
    for (std::size_t pos = arg.find(dir_slash); pos != std::string::npos;
         pos = arg.find(dir_slash, pos + 1)) {
        if (pos == 0 || arg[pos - 1] == ':' || arg[pos - 1] == '=' || arg[pos - 1] == ',')
            return true;
    }
    return false;
}

} // namespace

bool cmdline_is_our_qemu(const std::vector<std::string>& cmdline, const fs::path& run_dir) {
    if (cmdline.empty())
        return false;
    if (!fs::path(cmdline[0]).filename().string().starts_with("qemu-system"))
        return false;
    std::string dir_slash = run_dir.string();
    if (!dir_slash.ends_with('/'))
        dir_slash += '/';
    return std::any_of(cmdline.begin() + 1, cmdline.end(),
                       [&](const std::string& a) { return mentions_dir(a, dir_slash); });
}

bool is_our_qemu(pid_t pid, const fs::path& run_dir) {
    return pid > 0 && cmdline_is_our_qemu(read_cmdline(pid), run_dir);
}

std::string qemu_name_from_cmdline(const std::vector<std::string>& cmdline) {
    for (std::size_t i = 0; i + 1 < cmdline.size(); ++i)
        if (cmdline[i] == "-name")
            return cmdline[i + 1].substr(0, cmdline[i + 1].find(','));
    return "qemu";
}

std::vector<QemuInstance> find_our_qemus(const RunDir& dir, const std::optional<RunState>& state) {
    std::map<pid_t, QemuInstance> found;
    auto consider = [&](pid_t pid) {
        if (pid <= 0 || found.count(pid))
            return;
        auto cmdline = read_cmdline(pid);
        if (!cmdline_is_our_qemu(cmdline, dir.path()))
            return;
        QemuInstance q{pid, qemu_name_from_cmdline(cmdline), {}};
        if (auto index = parse_vm_name(q.name))
            q.qmp = dir.qmp_socket(*index);
        found.emplace(pid, std::move(q));
    };
    if (state)
        for (const auto& p : state->partitions)
            if (p.qemu_pid)
                consider(*p.qemu_pid);
    for (int index : dir.pid_file_indices()) {
        if (auto text = read_text_file(dir.pid_file(index))) {
            try {
                consider(static_cast<pid_t>(std::stol(*text)));
            } catch (const std::exception&) {
                // A half-written pidfile; the /proc scan below still finds it.
            }
        }
    }
    for (pid_t pid : list_pids())
        consider(pid);

    std::vector<QemuInstance> out;
    for (auto& [pid, q] : found)
        out.push_back(std::move(q));
    std::sort(out.begin(), out.end(), [](const QemuInstance& a, const QemuInstance& b) {
        return std::pair(parse_vm_name(a.name).value_or(999), a.pid) <
               std::pair(parse_vm_name(b.name).value_or(999), b.pid);
    });
    return out;
}

std::vector<StopOutcome> stop_qemus(const std::vector<QemuInstance>& qemus, const fs::path& run_dir,
                                    const StopTimings& timings) {
    struct Target {
        StopOutcome outcome;
        std::optional<PidHandle> handle;
    };
    std::vector<Target> targets;
    for (const auto& q : qemus) {
        Target t{{q, false, ""}, PidHandle::open(q.pid)};
        // Identity is checked after taking the pidfd: from here on the pid
        // cannot be recycled under us.
        if (!t.handle || !is_our_qemu(q.pid, run_dir)) {
            t.outcome.stopped = true;
            t.outcome.how = "already gone";
            t.handle.reset();
        }
        targets.push_back(std::move(t));
    }

    auto pending = [&](Target& t) {
        return t.handle && !t.outcome.stopped;
    };
    auto wait_all = [&](std::chrono::milliseconds budget, const std::string& how) {
        auto deadline = std::chrono::steady_clock::now() + budget;
        for (auto& t : targets) {
            if (!pending(t) || t.outcome.how != how)
                continue;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (t.handle->wait_exit(std::max(left, 0ms)))
                t.outcome.stopped = true;
        }
    };

    for (auto& t : targets) {
        if (!pending(t))
            continue;
        t.outcome.how = "QMP quit";
        try {
            if (t.outcome.qemu.qmp.empty())
                throw QmpError("no QMP socket");
            QmpClient::connect(t.outcome.qemu.qmp, 1s).quit();
        } catch (const Error&) {
            t.outcome.how = "SIGTERM"; // no point waiting for a quit never sent
        }
    }
    wait_all(timings.after_quit, "QMP quit");

    for (auto& t : targets) {
        if (pending(t)) {
            t.outcome.how = "SIGTERM";
            t.handle->send_signal(SIGTERM);
        }
    }
    wait_all(timings.after_term, "SIGTERM");

    for (auto& t : targets) {
        if (pending(t)) {
            t.outcome.how = "SIGKILL";
            t.handle->send_signal(SIGKILL);
        }
    }
    wait_all(timings.after_kill, "SIGKILL");

    std::vector<StopOutcome> out;
    for (auto& t : targets) {
        if (!t.outcome.stopped)
            t.outcome.how = "still running after SIGKILL (stuck in the kernel?)";
        out.push_back(std::move(t.outcome));
    }
    return out;
}

} // namespace partlink
