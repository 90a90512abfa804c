#include "signals.hpp"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "exit_status.hpp"

namespace plwlm {
namespace {

sigset_t stop_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

} // namespace

StopSignals::StopSignals() {
    const auto set = stop_set();
    if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0)
        throw_errno("sigprocmask");
    fd_.reset(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd_)
        throw_errno("signalfd");
}

StopSignals::~StopSignals() {
    const auto set = stop_set();
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

int StopSignals::take() const {
    signalfd_siginfo info{};
    if (::read(fd_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info))
        return 0;
    return static_cast<int>(info.ssi_signo);
}

} // namespace plwlm
