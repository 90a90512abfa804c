// Child processes and handles on other processes.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "unique_fd.hpp"

namespace partlink {

struct ExitStatus {
    int code = -1;  // exit status if the process exited, else -1
    int signal = 0; // terminating signal, else 0

    static ExitStatus from_wait_status(int status);
    bool exited() const { return code >= 0; }
    bool success() const { return code == 0; }
    std::string describe() const; // "exited with status 1", "killed by SIGKILL"
};

struct SpawnOptions {
    // stdout and stderr go here (created or truncated); else inherited.
    std::optional<std::filesystem::path> output_file;
    // Run in a new session: no controlling terminal, not in our process
    // group, so ^C in the user's terminal does not reach it.
    bool new_session = false;
    // stdin from /dev/null instead of ours.
    bool null_stdin = true;
    // stdin from this file (wins over null_stdin).
    std::optional<std::filesystem::path> input_file;
};

struct CommandResult {
    ExitStatus status;
    std::string output; // stdout and stderr, interleaved
};

// Runs a short command to completion, capturing its output; a command that
// takes longer than `timeout` is killed and reported as such.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A child process this object owns.  If it is still owned when the object
// is destroyed, it is killed and reaped: a launcher that fails half way must
// not leak processes.  detach() gives up ownership of a child that is meant
// to outlive us (QEMU after a successful `up`).
class Process {
public:
    // argv[0] is looked up in PATH if it has no '/'.
    static Process spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    ~Process();

    pid_t pid() const { return pid_; }

    // Reaps the child if it has exited; never blocks.
    std::optional<ExitStatus> poll();
    std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
    ExitStatus wait();
    void signal(int sig);
    // SIGTERM, then SIGKILL if it is still there after `grace`.
    ExitStatus terminate(std::chrono::milliseconds grace);
    pid_t detach();

private:
    friend CommandResult run_command(const std::vector<std::string>&, std::chrono::milliseconds);
    explicit Process(pid_t pid)
        : pid_(pid) {}
    void kill_and_reap() noexcept;

    pid_t pid_ = -1;
    std::optional<ExitStatus> status_;
};

// A process we did not start (a QEMU from an earlier `up`), held by pidfd so
// that a recycled pid can never be signalled by mistake: check identity
// after open(), then signal and wait through the handle.
class PidHandle {
public:
    static std::optional<PidHandle> open(pid_t pid); // nothing if it is gone

    pid_t pid() const { return pid_; }
    bool exited() const;
    bool wait_exit(std::chrono::milliseconds timeout) const;
    bool send_signal(int sig) const;

private:
    PidHandle(pid_t pid, UniqueFd fd)
        : pid_(pid)
        , fd_(std::move(fd)) {}
    pid_t pid_;
    UniqueFd fd_;
};

// Replaces this process with argv (looked up in PATH); throws an Error that
// ends with `missing_hint` if the program is not installed.
[[noreturn]] void exec_program(const std::vector<std::string>& argv,
                               const std::string& missing_hint);

// /proc/PID/cmdline split at NULs; empty if the process is gone or a zombie.
std::vector<std::string> read_cmdline(pid_t pid);
// Numeric entries of /proc.
std::vector<pid_t> list_pids();

} // namespace partlink
