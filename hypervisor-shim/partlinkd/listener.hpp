// partlinkd's listening unix socket.  A stale socket file (nobody answers on
// it) is replaced; a live one means another partlinkd, which is an error.
// The file is removed when the Listener dies.
#pragma once

#include <filesystem>
#include <optional>
#include <sys/types.h>

#include "unique_fd.hpp"

namespace partlink::daemon {

class Listener {
public:
    explicit Listener(std::filesystem::path path);
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    int fd() const { return fd_.get(); }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    UniqueFd fd_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

struct PeerCredentials {
    pid_t pid;
    uid_t uid;
};
// SO_PEERCRED of a connected unix socket.
PeerCredentials peer_credentials(int fd);

} // namespace partlink::daemon
