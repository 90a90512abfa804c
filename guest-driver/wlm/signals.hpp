// SIGINT and SIGTERM as a readable fd, so the event loop's poll() sees a stop
// request like any other input instead of being interrupted mid-step.
#pragma once

#include "unique_fd.hpp"

namespace plwlm {

class StopSignals {
public:
    // Blocks SIGINT and SIGTERM for this (single-threaded) process.
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    int fd() const noexcept { return fd_.get(); }
    // Reads the pending signal; returns its number.
    int take() const;

private:
    partlink::UniqueFd fd_;
};

} // namespace plwlm
