// A minimal QMP client: enough to ask a QEMU to quit and how it is doing.
// Every call has a deadline: a wedged QEMU must not wedge the launcher.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "unique_fd.hpp"

namespace partlink {

class QmpError : public Error {
public:
    using Error::Error;
};

class QmpClient {
public:
    // Connects, reads the greeting and negotiates capabilities.
    static QmpClient connect(const std::filesystem::path& socket,
                             std::chrono::milliseconds timeout = std::chrono::seconds(2));
    // Takes an already connected stream socket (tests use a socketpair).
    static QmpClient from_fd(UniqueFd fd,
                             std::chrono::milliseconds timeout = std::chrono::seconds(2));

    // The "return" member of the reply; throws QmpError on an "error" reply.
    nlohmann::json execute(const std::string& command,
                           const nlohmann::json& arguments = nlohmann::json::object());
    // Asks QEMU to exit; succeeds if QEMU acknowledged or hung up.
    void quit();
    // query-status "status": "running", "paused", "shutdown", ...
    std::string query_status();
    // query-balloon "actual": the guest's RAM as its balloon leaves it, in bytes.
    std::uint64_t query_balloon();

private:
    QmpClient(UniqueFd fd, std::chrono::milliseconds timeout)
        : fd_(std::move(fd))
        , timeout_(timeout) {}
    void handshake();
    nlohmann::json read_message(); // skips asynchronous events
    void send_line(const std::string& line);

    UniqueFd fd_;
    std::chrono::milliseconds timeout_;
    std::string buffer_;
};

} // namespace partlink
