#include "devloop/one_shot.hpp"

#include <cstdlib>

#include "error.hpp"
#include "host/process.hpp"
#include "host/ssh.hpp"
#include "run/boot.hpp"
#include "run/run_dir.hpp"
#include "run/teardown.hpp"
#include "run/up.hpp"

namespace partlink {

namespace fs = std::filesystem;

namespace {

// A run directory of our own, so that `run` works beside a running `up`;
// short, for QEMU's unix socket paths.
fs::path make_private_run_dir() {
    std::string templ = (fs::temp_directory_path() / "partlink-run.XXXXXX").string();
    if (!::mkdtemp(templ.data()))
        throw Error(errno_message("cannot create a run directory in " +
                                  fs::temp_directory_path().string()));
    return templ;
}

// Stops what `up` started, whatever way we leave.
class RunGuard {
public:
    RunGuard(const RunDir& dir, bool remove_dir, const Output& out)
        : dir_(dir)
        , remove_dir_(remove_dir)
        , out_(out) {}
    ~RunGuard() {
        try {
            TeardownReport r = tear_down(dir_, out_);
            if (remove_dir_ && r.errors.empty()) {
                std::error_code ec;
                fs::remove_all(dir_.path(), ec);
            }
        } catch (const std::exception& e) {
            out_.warn(std::string("shutting down: ") + e.what());
        }
    }
    RunGuard(const RunGuard&) = delete;
    RunGuard& operator=(const RunGuard&) = delete;

private:
    const RunDir& dir_;
    bool remove_dir_;
    const Output& out_;
};

} // namespace

int run_one_shot(const UpOptions& options, const std::vector<std::string>& on,
                 const std::vector<std::string>& command, const Layout& layout,
                 const std::optional<fs::path>& run_dir, const Output& out) {
    const bool private_dir = !run_dir;
    RunDir dir = RunDir::open(private_dir ? make_private_run_dir() : *run_dir);
    try {
        bring_up(options, layout, dir, out);
    } catch (const Error& e) {
        // bring_up has stopped what it started; its logs stay for a look.
        out.warn(std::string(e.what()) + " (logs in " + dir.path().string() + ")");
        return kOneShotBootFailed;
    }
    RunGuard guard(dir, private_dir, out);
    auto state = dir.load_state();
    if (!state)
        throw Error("the run's state vanished from " + dir.path().string());
    int status = 0;
    // ^C reaches the command's ssh too (same process group); the watch only
    // keeps it from killing us before the guard shuts down.
    InterruptWatch interrupts;
    for (const auto& vm : on) {
        const PartitionRecord* p = state->find(vm);
        SshTarget target{layout.ssh_identity(), layout.ssh_known_hosts(),
                         static_cast<std::uint16_t>(p->ssh_port)};
        SpawnOptions spawn;
        // One command may read our stdin (`partlink run -- sh <script`);
        // several in turn cannot share it.
        spawn.null_stdin = on.size() > 1;
        Process ssh = Process::spawn(build_ssh_argv(target, command, false), spawn);
        ExitStatus exit = ssh.wait();
        const int code = exit.exited() ? exit.code : 128 + exit.signal;
        if (on.size() > 1)
            out.info(vm + ": " + exit.describe());
        if (status == 0)
            status = code;
        InterruptWatch::check();
    }
    return status;
}

} // namespace partlink
