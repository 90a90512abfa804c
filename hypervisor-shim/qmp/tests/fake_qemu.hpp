// A scripted QMP server on the other end of a socketpair, for the QMP
// client's tests and those of what speaks QMP through it.
#pragma once

#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "unique_fd.hpp"

namespace partlink::testing {

class FakeQemu {
public:
    FakeQemu() {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
            throw std::runtime_error("socketpair");
        client_.reset(fds[0]);
        server_.reset(fds[1]);
    }

    UniqueFd take_client() { return std::move(client_); }

    void send(const nlohmann::json& msg) {
        std::string line = msg.dump() + "\r\n";
        ASSERT_EQ(::write(server_.get(), line.data(), line.size()),
                  static_cast<ssize_t>(line.size()));
    }

    nlohmann::json receive() {
        std::string line;
        char c;
        while (::read(server_.get(), &c, 1) == 1 && c != '\n')
            line += c;
        return nlohmann::json::parse(line);
    }

    void hang_up() { server_.reset(); }

private:
    UniqueFd client_;
    UniqueFd server_;
};

inline const nlohmann::json kQmpGreeting = {
    {"QMP", {{"version", nlohmann::json::object()}, {"capabilities", nlohmann::json::array()}}}};

} // namespace partlink::testing
