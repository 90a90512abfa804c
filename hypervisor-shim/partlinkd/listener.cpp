#include "listener.hpp"

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.hpp"

namespace fs = std::filesystem;

namespace partlink::daemon {

namespace {

sockaddr_un address_of(const fs::path& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& text = path.native();
    if (text.empty() || text.size() >= sizeof(addr.sun_path))
        throw UsageError("--socket " + text + ": a unix socket path must be 1.." +
                         std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
    std::memcpy(addr.sun_path, text.c_str(), text.size() + 1);
    return addr;
}

// Removes a socket file nobody listens on; refuses a live one.
void remove_stale(const fs::path& path, const sockaddr_un& addr) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) < 0) {
        if (errno == ENOENT)
            return;
        throw_errno("cannot check " + path.string());
    }
    if (!S_ISSOCK(st.st_mode))
        throw Error(path.string() + " exists and is not a socket: remove it or choose another "
                                    "--socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe)
        throw_errno("socket");
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0)
        throw Error("another partlinkd is already listening on " + path.string());
    if (errno != ECONNREFUSED && errno != ENOENT)
        throw_errno("cannot check whether " + path.string() + " is in use");
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        throw_errno("cannot remove stale socket " + path.string());
}

} // namespace

Listener::Listener(fs::path path)
    : path_(std::move(path)) {
    sockaddr_un addr = address_of(path_);
    remove_stale(path_, addr);
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_)
        throw_errno("socket");
    // Only this user may even connect; SO_PEERCRED is checked as well.
    mode_t old_mask = ::umask(0077);
    int rc = ::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    int err = errno;
    ::umask(old_mask);
    if (rc < 0)
        throw_errno("cannot bind " + path_.string(), err);
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) {
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
    if (::listen(fd_.get(), 64) < 0) {
        ::unlink(path_.c_str());
        throw_errno("cannot listen on " + path_.string());
    }
}

Listener::~Listener() {
    // Only our own socket file: a successor may have replaced it.
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
        ::unlink(path_.c_str());
}

PeerCredentials peer_credentials(int fd) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        throw_errno("SO_PEERCRED");
    return PeerCredentials{cred.pid, cred.uid};
}

} // namespace partlink::daemon
