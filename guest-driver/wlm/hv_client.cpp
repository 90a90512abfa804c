#include "hv_client.hpp"

#include <cerrno>
#include <cmath>
#include <fcntl.h>
#include <ostream>

#include "report.hpp"

namespace plwlm {

void validate(const Directive& d) {
    if (!valid_partition_name(d.target))
        throw UsageError("directive: partition '" + d.target +
                         "' is not a valid name (1-64 of A-Z a-z 0-9 . _ -)");
    if (!std::isfinite(d.cpu) || d.cpu <= 0 || d.cpu > kMaxDirectiveCpus)
        throw UsageError("directive: cpu must be a number of CPUs in (0, " +
                         std::to_string(static_cast<int>(kMaxDirectiveCpus)) + "], e.g. 0.5");
    if (d.donor && (!valid_partition_name(*d.donor) || *d.donor == d.target))
        throw UsageError("directive: donor '" + *d.donor +
                         "' must be a valid partition name other than the target");
}

std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
    case Outcome::applied:
        return "applied";
    case Outcome::clamped:
        return "clamped";
    case Outcome::refused:
        return "refused";
    case Outcome::dry_run:
        return "dry-run";
    }
    return "unknown";
}

bool accepted(const Answer& answer) noexcept {
    return answer.outcome != Outcome::refused;
}

DryRunChannel::DryRunChannel(std::ostream* log)
    : log_(log) {}

Answer DryRunChannel::send(const Directive& d) {
    validate(d);
    if (log_) {
        *log_ << "dry-run: would set " << d.target << " to " << d.cpu << " CPUs";
        if (d.donor)
            *log_ << " (from " << *d.donor << ")";
        *log_ << '\n';
    }
    return {Outcome::dry_run, "dry run: nothing sent to the hypervisor", d.cpu};
}

DeviceChannel::DeviceChannel(std::string path)
    : path_(std::move(path)) {
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    if (fd_)
        return;
    const int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV)
        throw Error(path_ + " not found: load partlink.ko with the hypervisor mailbox (issue 3), "
                            "or run with --dry-run",
                    kExitUnavailable);
    if (err == EACCES || err == EPERM)
        throw Error(errno_message("cannot open " + path_, err) + ": run plwlm as root",
                    kExitUnavailable);
    throw Error(errno_message("cannot open " + path_, err), kExitUnavailable);
}

Answer DeviceChannel::send(const Directive& d) {
    validate(d);
    // The mailbox protocol is defined with the device (issue 3); until then an
    // open device cannot be spoken to, and saying so beats guessing a format.
    throw Error(path_ + " is present but this plwlm does not speak its mailbox protocol yet "
                        "(issue 3); update plwlm or run with --dry-run",
                kExitUnavailable);
}

} // namespace plwlm
