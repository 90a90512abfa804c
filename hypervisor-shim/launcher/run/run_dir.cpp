#include "run/run_dir.hpp"

#include <algorithm>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <system_error>
#include <unistd.h>

#include "error.hpp"

namespace partlink {

namespace fs = std::filesystem;

namespace {

fs::path vm_file(const fs::path& dir, int index, const char* suffix) {
    return dir / ("vm" + std::to_string(index) + suffix);
}

} // namespace

RunDir RunDir::open(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
        throw Error("cannot create run directory " + dir.string() + ": " + ec.message());
    fs::path real = fs::canonical(dir, ec);
    if (ec)
        throw Error("cannot resolve run directory " + dir.string() + ": " + ec.message());
    if (!fs::is_directory(real))
        throw Error("run directory " + real.string() + " is not a directory");
    return RunDir(real);
}

std::optional<RunDir> RunDir::open_existing(const fs::path& dir) {
    std::error_code ec;
    fs::path real = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(real))
        return std::nullopt;
    return RunDir(real);
}

fs::path RunDir::console_file(int index) const {
    return vm_file(path_, index, ".console");
}
fs::path RunDir::console_socket(int index) const {
    return vm_file(path_, index, ".console.sock");
}
fs::path RunDir::log_file(int index) const {
    return vm_file(path_, index, ".log");
}
fs::path RunDir::qmp_socket(int index) const {
    return vm_file(path_, index, ".qmp");
}
fs::path RunDir::hv_qmp_socket(int index) const {
    return vm_file(path_, index, ".hv.qmp");
}
fs::path RunDir::pid_file(int index) const {
    return vm_file(path_, index, ".pid");
}
fs::path RunDir::ssh_probe_log(int index) const {
    return vm_file(path_, index, ".ssh-probe.log");
}

std::optional<RunState> RunDir::load_state() const {
    auto text = read_text_file(state_file());
    if (!text)
        return std::nullopt;
    return parse_state(*text);
}

void RunDir::save_state(const RunState& state) const {
    write_file_atomic(state_file(), serialize_state(state));
}

std::vector<int> RunDir::pid_file_indices() const {
    std::vector<int> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(path_, ec)) {
        const fs::path& p = entry.path();
        if (p.extension() != ".pid")
            continue;
        if (auto index = parse_vm_name(p.stem().string()))
            out.push_back(*index);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<RunDirLock> RunDirLock::try_acquire(const RunDir& dir, Mode mode) {
    // O_CLOEXEC matters: a QEMU that inherited this fd would hold the lock
    // for as long as it runs.
    UniqueFd fd(::open(dir.lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd)
        throw_errno("cannot open lock file " + dir.lock_file().string());
    int op = (mode == Mode::Exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    while (::flock(fd.get(), op) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return std::nullopt;
        throw_errno("cannot lock " + dir.lock_file().string());
    }
    return RunDirLock(std::move(fd));
}

RunDirLock RunDirLock::acquire_or_fail(const RunDir& dir, Mode mode) {
    auto lock = try_acquire(dir, mode);
    if (!lock)
        throw Error("another partlink command is working on " + dir.path().string() +
                    " (it holds " + dir.lock_file().string() +
                    "); wait for it to finish, or use another --run-dir");
    return std::move(*lock);
}

std::optional<std::string> read_text_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string tail_lines(const fs::path& path, std::size_t lines) {
    auto text = read_text_file(path);
    if (!text)
        return "(" + path.string() + " does not exist)\n";
    std::string& t = *text;
    // Serial consoles end lines with \r\n.
    t.erase(std::remove(t.begin(), t.end(), '\r'), t.end());
    if (t.empty())
        return "(empty)\n";
    if (t.back() != '\n')
        t.push_back('\n');
    std::size_t pos = t.size() - 1;
    std::size_t seen = 0;
    while (pos > 0) {
        if (t[pos - 1] == '\n' && ++seen == lines)
            break;
        --pos;
    }
    return t.substr(pos);
}

void write_file_atomic(const fs::path& path, std::string_view data) {
    fs::path tmp = path;
    tmp += ".tmp." + std::to_string(::getpid());
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd)
        throw_errno("cannot write " + tmp.string());
    std::size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            ::unlink(tmp.c_str());
            throw_errno("cannot write " + tmp.string(), err);
        }
        done += static_cast<std::size_t>(n);
    }
    // Without fsync a crash could leave a renamed but empty file.
    if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw_errno("cannot write " + tmp.string(), err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw_errno("cannot replace " + path.string(), err);
    }
}

} // namespace partlink
