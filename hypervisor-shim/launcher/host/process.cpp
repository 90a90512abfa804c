#include "host/process.hpp"

#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iterator>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "error.hpp"

extern char** environ;

namespace partlink {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

ExitStatus ExitStatus::from_wait_status(int status) {
    ExitStatus s;
    if (WIFEXITED(status))
        s.code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        s.signal = WTERMSIG(status);
    return s;
}

std::string ExitStatus::describe() const {
    if (exited())
        return "exited with status " + std::to_string(code);
    if (signal != 0) {
        const char* abbrev = sigabbrev_np(signal);
        return std::string("killed by ") +
               (abbrev ? "SIG" + std::string(abbrev) : "signal " + std::to_string(signal));
    }
    return "ended in an unknown way";
}

namespace {

// posix_spawn's attribute and file-action objects, freed on every path.
struct SpawnAttr {
    posix_spawnattr_t attr;
    SpawnAttr() { posix_spawnattr_init(&attr); }
    ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
};

struct SpawnFileActions {
    posix_spawn_file_actions_t actions;
    SpawnFileActions() { posix_spawn_file_actions_init(&actions); }
    ~SpawnFileActions() { posix_spawn_file_actions_destroy(&actions); }
};

pid_t spawn_raw(const std::vector<std::string>& argv, bool new_session, int stdin_fd, int out_fd) {
    if (argv.empty())
        throw Error("internal error: empty command");
    SpawnAttr attr;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_session)
        flags |= POSIX_SPAWN_SETSID;
    posix_spawnattr_setflags(&attr.attr, flags);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr.attr, &none);
    // Whatever we ignore or catch, the child starts with default dispositions.
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT, SIGCHLD})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigdefault(&attr.attr, &defaults);

    SpawnFileActions fa;
    if (stdin_fd >= 0)
        posix_spawn_file_actions_adddup2(&fa.actions, stdin_fd, STDIN_FILENO);
    if (out_fd >= 0) {
        posix_spawn_file_actions_adddup2(&fa.actions, out_fd, STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa.actions, out_fd, STDERR_FILENO);
    }

    std::vector<char*> cargv;
    for (const auto& a : argv)
        cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    pid_t pid = -1;
    int rc = argv[0].find('/') == std::string::npos
                 ? posix_spawnp(&pid, cargv[0], &fa.actions, &attr.attr, cargv.data(), environ)
                 : posix_spawn(&pid, cargv[0], &fa.actions, &attr.attr, cargv.data(), environ);
    if (rc != 0)
        throw Error(errno_message("cannot run " + argv[0], rc));
    return pid;
}

UniqueFd open_or_throw(const std::filesystem::path& path, int flags, mode_t mode = 0644) {
    UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
    if (!fd)
        throw_errno("cannot open " + path.string());
    return fd;
}

// Sleeps in small steps so that callers polling a condition stay responsive.
void nap(std::chrono::milliseconds remaining) {
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(remaining, 20ms));
}

} // namespace

Process Process::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
    UniqueFd in;
    if (options.input_file)
        in = open_or_throw(*options.input_file, O_RDONLY);
    else if (options.null_stdin)
        in = open_or_throw("/dev/null", O_RDONLY);
    UniqueFd out;
    if (options.output_file)
        out = open_or_throw(*options.output_file, O_WRONLY | O_CREAT | O_TRUNC);
    return Process(spawn_raw(argv, options.new_session, in.get(), out.get()));
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1))
    , status_(std::exchange(other.status_, std::nullopt)) {}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        status_ = std::exchange(other.status_, std::nullopt);
    }
    return *this;
}

Process::~Process() {
    kill_and_reap();
}

void Process::kill_and_reap() noexcept {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    pid_ = -1;
    status_.reset();
}

std::optional<ExitStatus> Process::poll() {
    if (status_ || pid_ <= 0)
        return status_;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_)
        status_ = ExitStatus::from_wait_status(status);
    else if (r < 0 && errno == ECHILD)
        status_ = ExitStatus{}; // reaped elsewhere; nothing more to learn
    return status_;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
        if (auto s = poll())
            return s;
        auto now = Clock::now();
        if (now >= deadline)
            return std::nullopt;
        nap(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    }
}

ExitStatus Process::wait() {
    if (status_ || pid_ <= 0)
        return status_.value_or(ExitStatus{});
    int status = 0;
    pid_t r;
    while ((r = ::waitpid(pid_, &status, 0)) < 0 && errno == EINTR) {
    }
    status_ = r == pid_ ? ExitStatus::from_wait_status(status) : ExitStatus{};
    return *status_;
}

void Process::signal(int sig) {
    if (pid_ > 0 && !poll())
        ::kill(pid_, sig);
}

ExitStatus Process::terminate(std::chrono::milliseconds grace) {
    signal(SIGTERM);
    if (auto s = wait_for(grace))
        return *s;
    signal(SIGKILL);
    return wait();
}

pid_t Process::detach() {
    pid_t pid = pid_;
    pid_ = -1;
    status_.reset();
    return pid;
}

void exec_program(const std::vector<std::string>& argv, const std::string& missing_hint) {
    std::vector<char*> cargv;
    for (const auto& a : argv)
        cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    ::execvp(cargv[0], cargv.data());
    int err = errno;
    throw Error(errno_message("cannot run " + argv[0], err) +
                (err == ENOENT ? "; " + missing_hint : ""));
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw_errno("cannot create a pipe");
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    UniqueFd in = open_or_throw("/dev/null", O_RDONLY);

    Process child(spawn_raw(argv, false, in.get(), write_end.get()));
    write_end.reset(); // so that we see EOF when the child is done

    CommandResult result;
    auto deadline = Clock::now() + timeout;
    char buf[4096];
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= 0ms) {
            child.signal(SIGKILL);
            result.status = child.wait();
            result.output += "\n(killed after " + std::to_string(timeout.count() / 1000) + " s)";
            return result;
        }
        pollfd pfd{read_end.get(), POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            continue;
        ssize_t n = ::read(read_end.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        result.output.append(buf, static_cast<std::size_t>(n));
    }
    result.status = child.wait();
    return result;
}

std::optional<PidHandle> PidHandle::open(pid_t pid) {
    if (pid <= 0)
        return std::nullopt;
    // Raw syscalls: glibc 2.36's <sys/pidfd.h> lacks C++ linkage.
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0)
        return std::nullopt;
    return PidHandle(pid, UniqueFd(fd));
}

bool PidHandle::exited() const {
    return wait_exit(0ms);
}

bool PidHandle::wait_exit(std::chrono::milliseconds timeout) const {
    // A pidfd polls readable once the process has exited (zombie or not).
    auto deadline = Clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd_.get(), POLLIN, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
        if (r > 0)
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            throw_errno("cannot wait for pid " + std::to_string(pid_));
        if (left <= 0ms)
            return false;
    }
}

bool PidHandle::send_signal(int sig) const {
    return ::syscall(SYS_pidfd_send_signal, fd_.get(), sig, nullptr, 0) == 0;
}

std::vector<std::string> read_cmdline(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
    if (!in)
        return {};
    std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    std::size_t start = 0;
    while (start < raw.size()) {
        std::size_t end = raw.find('\0', start);
        if (end == std::string::npos)
            end = raw.size();
        args.push_back(raw.substr(start, end - start));
        start = end + 1;
    }
    return args;
}

std::vector<pid_t> list_pids() {
    std::vector<pid_t> pids;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        std::string name = entry.path().filename().string();
        pid_t pid = 0;
        auto [ptr, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
        if (err == std::errc() && ptr == name.data() + name.size() && pid > 0)
            pids.push_back(pid);
    }
    return pids;
}

} // namespace partlink
