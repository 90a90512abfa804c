#include "qmp.hpp"

#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace partlink {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

class HungUp : public QmpError {
public:
    HungUp()
        : QmpError("QEMU closed the QMP connection") {}
};

void wait_fd(int fd, short events, Clock::time_point deadline, const char* what) {
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            throw QmpError(std::string("QMP timed out ") + what);
        pollfd pfd{fd, events, 0};
        int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r > 0)
            return;
        if (r < 0 && errno != EINTR)
            throw QmpError(errno_message("QMP poll"));
    }
}

} // namespace

QmpClient QmpClient::connect(const std::filesystem::path& socket,
                             std::chrono::milliseconds timeout) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = socket.string();
    if (path.size() >= sizeof addr.sun_path)
        throw QmpError("QMP socket path is too long for a unix socket: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
        throw QmpError(errno_message("cannot create a unix socket"));
    // A unix-socket connect does not block on a listening peer; a QEMU too
    // busy to accept shows up as a read timeout in the handshake.
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw QmpError(errno_message("cannot connect to QMP socket " + path));
    return from_fd(std::move(fd), timeout);
}

QmpClient QmpClient::from_fd(UniqueFd fd, std::chrono::milliseconds timeout) {
    QmpClient client(std::move(fd), timeout);
    client.handshake();
    return client;
}

void QmpClient::handshake() {
    json greeting = read_message();
    if (!greeting.contains("QMP"))
        throw QmpError("unexpected QMP greeting: " + greeting.dump());
    execute("qmp_capabilities");
}

void QmpClient::send_line(const std::string& line) {
    auto deadline = Clock::now() + timeout_;
    std::size_t done = 0;
    while (done < line.size()) {
        wait_fd(fd_.get(), POLLOUT, deadline, "sending a command");
        // MSG_NOSIGNAL: a QEMU that went away is an error here, not a SIGPIPE.
        ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == EPIPE || errno == ECONNRESET)
                throw HungUp();
            throw QmpError(errno_message("QMP send"));
        }
        done += static_cast<std::size_t>(n);
    }
}

json QmpClient::read_message() {
    auto deadline = Clock::now() + timeout_;
    while (true) {
        std::size_t nl;
        while ((nl = buffer_.find('\n')) != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            if (line.find_first_not_of(" \t\r") == std::string::npos)
                continue;
            json msg = json::parse(line, nullptr, false);
            if (msg.is_discarded() || !msg.is_object())
                throw QmpError("QEMU sent something that is not QMP: " + line);
            if (msg.contains("event"))
                continue;
            return msg;
        }
        wait_fd(fd_.get(), POLLIN, deadline, "waiting for a reply");
        char buf[4096];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n == 0)
            throw HungUp();
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            if (errno == ECONNRESET)
                throw HungUp();
            throw QmpError(errno_message("QMP receive"));
        }
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

json QmpClient::execute(const std::string& command, const json& arguments) {
    json request = {{"execute", command}};
    if (!arguments.empty())
        request["arguments"] = arguments;
    send_line(request.dump() + "\n");
    json reply = read_message();
    if (auto it = reply.find("error"); it != reply.end()) {
        std::string desc = it->value("desc", it->dump());
        throw QmpError("QMP " + command + " failed: " + desc);
    }
    if (auto it = reply.find("return"); it != reply.end())
        return *it;
    throw QmpError("unexpected QMP reply to " + command + ": " + reply.dump());
}

void QmpClient::quit() {
    try {
        execute("quit");
    } catch (const HungUp&) {
        // QEMU may exit before its reply makes it out; that is success too.
    }
}

std::string QmpClient::query_status() {
    json r = execute("query-status");
    if (!r.is_object() || !r.contains("status") || !r["status"].is_string())
        throw QmpError("unexpected query-status reply: " + r.dump());
    return r["status"].get<std::string>();
}

std::uint64_t QmpClient::query_balloon() {
    const json r = execute("query-balloon");
    const auto it = r.find("actual");
    if (it == r.end() || !it->is_number_unsigned())
        throw QmpError("unexpected query-balloon reply: " + r.dump());
    return it->get<std::uint64_t>();
}

} // namespace partlink
