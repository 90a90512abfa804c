#include "hv_client.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <ostream>
#include <sys/ioctl.h>

#include "mailbox.hpp"
#include "report.hpp"

namespace plwlm {

void validate(const Directive& d) {
    if (!valid_partition_name(d.target))
        throw UsageError("directive: partition '" + d.target +
                         "' is not a valid name (1-16 of A-Z a-z 0-9 . _ -)");
    if (!std::isfinite(d.cpu) || d.cpu <= 0 || d.cpu > kMaxDirectiveCpus)
        throw UsageError("directive: cpu must be a number of CPUs in (0, " +
                         std::to_string(static_cast<int>(kMaxDirectiveCpus)) + "], e.g. 0.5");
    if (d.donor && (!valid_partition_name(*d.donor) || *d.donor == d.target))
        throw UsageError("directive: donor '" + *d.donor +
                         "' must be a valid partition name other than the target");
}

void validate(const MemoryDirective& d) {
    if (!valid_partition_name(d.target))
        throw UsageError("directive: partition '" + d.target +
                         "' is not a valid name (1-16 of A-Z a-z 0-9 . _ -)");
    if (d.mib <= 0 || d.mib > kMaxDirectiveMib)
        throw UsageError("directive: memory must be a number of MiB in [1, " +
                         std::to_string(kMaxDirectiveMib) + "], e.g. 512");
}

std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
    case Outcome::applied:
        return "applied";
    case Outcome::clamped:
        return "clamped";
    case Outcome::refused:
        return "refused";
    case Outcome::failed:
        return "failed";
    case Outcome::unavailable:
        return "unavailable";
    case Outcome::dry_run:
        return "dry-run";
    }
    return "unknown";
}

bool accepted(const Answer& answer) noexcept {
    return answer.outcome == Outcome::applied || answer.outcome == Outcome::clamped ||
           answer.outcome == Outcome::dry_run;
}

Answer HypervisorChannel::send_memory(const MemoryDirective&) {
    throw Error("the " + std::string(name()) + " channel carries no memory directives",
                kExitUnavailable);
}

Answer HypervisorChannel::report(const ChartReport&) {
    throw Error("the " + std::string(name()) + " channel carries no reports", kExitUnavailable);
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

Answer DryRunChannel::send_memory(const MemoryDirective& d) {
    validate(d);
    if (log_)
        *log_ << "dry-run: would set " << d.target << " to " << d.mib << " MiB\n";
    return {Outcome::dry_run, "dry run: nothing sent to the hypervisor",
            static_cast<double>(d.mib)};
}

Answer DryRunChannel::report(const ChartReport&) {
    return {Outcome::dry_run, "dry run: nothing sent to the hypervisor", 0};
}

DeviceChannel::DeviceChannel(std::string path)
    : path_(std::move(path)) {
    fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    if (fd_)
        return;
    const int err = errno;
    if (err == ENOENT || err == ENXIO || err == ENODEV)
        throw Error(path_ + " not found: load partlink.ko (it provides the hypervisor mailbox), "
                            "or run with --dry-run",
                    kExitUnavailable);
    if (err == EACCES || err == EPERM)
        throw Error(errno_message("cannot open " + path_, err) + ": run plwlm as root",
                    kExitUnavailable);
    throw Error(errno_message("cannot open " + path_, err), kExitUnavailable);
}

namespace {

// One PARTLINK_HV_EXCHANGE: the request's bytes in, the answer's bytes out.
MailboxAnswer exchange(int fd, const std::string& path, const MailboxRequest& request) {
    partlink_hv_exchange x{};
    static_assert(sizeof(x.request) == std::tuple_size_v<MailboxRequest>);
    static_assert(sizeof(x.answer) == std::tuple_size_v<MailboxAnswer>);
    std::memcpy(&x.request, request.data(), request.size());
    if (::ioctl(fd, PARTLINK_HV_EXCHANGE, &x) != 0) {
        const int err = errno;
        switch (err) {
        case ETIMEDOUT:
            throw Error(path + ": the device never answered; is partlinkd running?",
                        kExitUnavailable);
        case ENODEV:
            throw Error(path + ": the partlink adapter is gone", kExitUnavailable);
        case ENOTTY:
        case EINVAL: // partlink.ko before it followed the kernel's convention
            throw Error(path + " is not a partlink mailbox (it refuses PARTLINK_HV_EXCHANGE): "
                               "load the partlink.ko that matches this plwlm",
                        kExitUnavailable);
        case EINTR:
            throw Error(path + ": interrupted; the request may still be carried out");
        default:
            throw Error(errno_message(path + ": PARTLINK_HV_EXCHANGE", err));
        }
    }
    MailboxAnswer answer;
    std::memcpy(answer.data(), &x.answer, answer.size());
    return answer;
}

} // namespace

Answer DeviceChannel::send(const Directive& d) {
    return decode(exchange(fd_.get(), path_, encode(d)), MailboxOp::set_cpu);
}

Answer DeviceChannel::send_memory(const MemoryDirective& d) {
    return decode(exchange(fd_.get(), path_, encode(d)), MailboxOp::set_memory);
}

Answer DeviceChannel::send_raw(const MailboxRequest& request) {
    const std::uint32_t op =
        static_cast<std::uint32_t>(request[0]) | static_cast<std::uint32_t>(request[1]) << 8 |
        static_cast<std::uint32_t>(request[2]) << 16 | static_cast<std::uint32_t>(request[3]) << 24;
    const auto as = op == PARTLINK_MBOX_OP_SET_MEMORY ? MailboxOp::set_memory
                    : op == PARTLINK_MBOX_OP_REPORT   ? MailboxOp::report
                                                      : MailboxOp::set_cpu;
    return decode(exchange(fd_.get(), path_, request), as);
}

Answer DeviceChannel::send_unchecked(const Directive& d) {
    return decode(exchange(fd_.get(), path_, encode_unchecked(d)), MailboxOp::set_cpu);
}

Answer DeviceChannel::send_unchecked(const MemoryDirective& d) {
    return decode(exchange(fd_.get(), path_, encode_unchecked(d)), MailboxOp::set_memory);
}

Answer DeviceChannel::report(const ChartReport& r) {
    return decode(exchange(fd_.get(), path_, encode(r)), MailboxOp::report);
}

} // namespace plwlm
