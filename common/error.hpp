// Error types shared by the partlink CLI, partlinkd and plwlm.
//
// Every message is meant to be shown to a person as is, after "partlink: ",
// so it says what went wrong and, where there is one, what to do about it.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace partlink {

// Process exit statuses: a usage error is anything decided from the command
// line alone; everything else that fails is a runtime error.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;
inline constexpr int kExitUsage = 2;

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = kExitRuntime)
        : std::runtime_error(message)
        , exit_code_(exit_code) {}

    int exit_code() const noexcept { return exit_code_; }

private:
    int exit_code_;
};

class UsageError : public Error {
public:
    explicit UsageError(const std::string& message)
        : Error(message, kExitUsage) {}
};

// "WHAT: strerror(errno)" for a failed system call.
inline std::string errno_message(const std::string& what, int err = errno) {
    return what + ": " + std::strerror(err);
}

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw Error(errno_message(what, err));
}

} // namespace partlink
