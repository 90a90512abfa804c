#include "devloop/console.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "error.hpp"
#include "unique_fd.hpp"

namespace partlink {

namespace {

// The terminal in raw mode while attached: keys such as ^C must reach the
// guest's shell, not kill us.  Restored on every way out.
class RawTerminal {
public:
    explicit RawTerminal(int fd)
        : fd_(fd) {
        if (!::isatty(fd) || ::tcgetattr(fd, &saved_) != 0)
            return;
        termios raw = saved_;
        ::cfmakeraw(&raw);
        if (::tcsetattr(fd, TCSANOW, &raw) == 0)
            active_ = true;
    }
    ~RawTerminal() {
        if (active_)
            ::tcsetattr(fd_, TCSANOW, &saved_);
    }
    RawTerminal(const RawTerminal&) = delete;
    RawTerminal& operator=(const RawTerminal&) = delete;

private:
    int fd_;
    termios saved_{};
    bool active_ = false;
};

UniqueFd connect_unix(const std::filesystem::path& path, const std::string& vm) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.string().size() >= sizeof addr.sun_path)
        throw Error("console socket path too long: " + path.string());
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        throw Error(std::string("socket: ") + std::strerror(errno));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw Error("cannot attach to " + vm + "'s console (" + path.string() +
                    "): " + std::strerror(errno) + "; is it running? (`partlink status`)");
    return fd;
}

bool write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        ssize_t n = ::write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

void note(const std::string& text) {
    // \r: the terminal may be raw.
    std::string line = "\r\npartlink: " + text + "\r\n";
    write_all(STDERR_FILENO, line.data(), line.size());
}

} // namespace

int attach_console(const std::filesystem::path& socket, const std::string& vm) {
    UniqueFd con = connect_unix(socket, vm);
    note("attached to " + vm + "'s console; detach with Ctrl-]");
    RawTerminal raw(STDIN_FILENO);
    // A newline makes the shell print its prompt.
    write_all(con.get(), "\n", 1);

    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {con.get(), POLLIN, 0}};
    char buf[4096];
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            throw Error(std::string("poll: ") + std::strerror(errno));
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = ::read(con.get(), buf, sizeof buf);
            if (n <= 0) {
                note(vm + "'s console closed (its QEMU stopped)");
                return 0;
            }
            write_all(STDOUT_FILENO, buf, static_cast<std::size_t>(n));
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                // Our input ended (a script): stop reading it, keep showing
                // the guest until it closes or we are killed.
                fds[0].fd = -1;
                continue;
            }
            const char* end = buf + n;
            const char* key = std::find(static_cast<const char*>(buf), end, kConsoleDetachKey);
            write_all(con.get(), buf, static_cast<std::size_t>(key - buf));
            if (key != end) {
                note("detached from " + vm + "'s console");
                return 0;
            }
        }
    }
}

} // namespace partlink
