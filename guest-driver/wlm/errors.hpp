// Errors and exit statuses of plwlm.
//
// Messages are shown to a person after "plwlm: ", so each says what went
// wrong and, where there is one, what to do about it.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace plwlm {

inline constexpr int kExitOk = 0;
// A runtime failure, or the hypervisor refused a directive.
inline constexpr int kExitFailure = 1;
// Decided from the command line alone.
inline constexpr int kExitUsage = 2;
// The hypervisor channel is not there (no /dev/partlink-hv).
inline constexpr int kExitUnavailable = 3;

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message, int exit_code = kExitFailure)
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

inline std::string errno_message(const std::string& what, int err = errno) {
    return what + ": " + std::strerror(err);
}

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
    throw Error(errno_message(what, err));
}

} // namespace plwlm
