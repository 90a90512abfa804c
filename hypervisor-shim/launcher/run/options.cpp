#include "run/options.hpp"

#include <charconv>
#include <fstream>
#include <sched.h>
#include <set>
#include <thread>

#include "config.hpp"
#include "error.hpp"
#include "run/capacity_setup.hpp"
#include "table.hpp"

namespace partlink {

std::string_view to_string(Accel accel) {
    switch (accel) {
    case Accel::Auto:
        return "auto";
    case Accel::Kvm:
        return "kvm";
    case Accel::Tcg:
        return "tcg";
    }
    return "?";
}

std::string_view to_string(NetMode net) {
    switch (net) {
    case NetMode::VirtioTap:
        return "virtio-tap";
    case NetMode::VirtioSocket:
        return "virtio-socket";
    case NetMode::Partlink:
        return "partlink";
    }
    return "?";
}

std::optional<Accel> parse_accel(std::string_view text) {
    for (Accel a : {Accel::Auto, Accel::Kvm, Accel::Tcg})
        if (text == to_string(a))
            return a;
    return std::nullopt;
}

std::optional<NetMode> parse_net_mode(std::string_view text) {
    for (NetMode n : {NetMode::VirtioTap, NetMode::VirtioSocket, NetMode::Partlink})
        if (text == to_string(n))
            return n;
    return std::nullopt;
}

namespace {

std::optional<long long> parse_integer(std::string_view text) {
    long long value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end)
        return std::nullopt;
    return value;
}

long long integer_in_range(std::string_view option, std::string_view text, long long min,
                           long long max, std::string_view extra = {}) {
    auto value = parse_integer(text);
    if (!value)
        throw UsageError(std::string(option) + " must be a whole number, not '" +
                         std::string(text) + "'");
    if (*value < min || *value > max) {
        std::string message = std::string(option) + " must be between " + std::to_string(min) +
                              " and " + std::to_string(max);
        if (!extra.empty())
            message += " (" + std::string(extra) + ")";
        throw UsageError(message);
    }
    return *value;
}

// --policy FILE: read like partlinkd reads it, against this host's CPUs,
// and checked against the run's partitions and WLM partition.
void validate_policy_arg(UpOptions& opts, const std::string& arg, int host_cpus) {
    namespace fs = std::filesystem;
    if (!opts.cgroups)
        throw UsageError("--policy sets the partitions' CPU cgroups; it does not go with "
                         "--no-cgroups");
    if (arg.empty())
        throw UsageError("--policy must not be empty");
    std::error_code ec;
    fs::path file = fs::absolute(arg, ec);
    if (ec || !fs::is_regular_file(file, ec))
        throw UsageError("--policy " + arg + ": no such file");
    file = file.lexically_normal();
    capacity::Policy policy;
    try {
        policy = capacity::load_policy(file, static_cast<double>(host_cpus));
    } catch (const Error& e) {
        throw UsageError("--policy: " + std::string(e.what()));
    }
    check_policy_for_run(policy, opts.vms, opts.mem_mib, file.string());
    if (opts.fabric_config && opts.fabric_wlm != policy.privileged)
        throw UsageError("--policy " + file.string() + " makes " + policy.privileged +
                         " the WLM partition but --fabric-config " + opts.fabric_config->string() +
                         (opts.fabric_wlm ? " names " + *opts.fabric_wlm : " names none") +
                         "; set \"wlm\": \"" + policy.privileged + "\" in the fabric config");
    opts.policy_file = file;
    opts.policy = std::move(policy);
}

} // namespace

namespace {

// partlinkd loads the table the same way: a bad one is refused here, with
// the exact reason, before anything boots.
void validate_segments_arg(UpOptions& opts, const std::string& arg) {
    namespace fs = std::filesystem;
    if (opts.net != NetMode::Partlink)
        throw UsageError(
            "--segments needs --net partlink (the segments are partlinkd's), not --net " +
            std::string(to_string(opts.net)));
    if (arg.empty())
        throw UsageError("--segments must not be empty");
    std::error_code ec;
    fs::path file = fs::absolute(arg, ec);
    if (ec || !fs::is_regular_file(file, ec))
        throw UsageError("--segments " + arg + ": no such file");
    std::set<std::string, std::less<>> names;
    for (int i = 1; i <= opts.vms; ++i)
        names.insert(vm_name(i));
    try {
        segments::Table::load(file, names);
    } catch (const Error& e) {
        throw UsageError("--segments: " + std::string(e.what()));
    }
    opts.segments = file.lexically_normal();
}

} // namespace

UpOptions validate_up_args(const UpArgs& args, int host_cpus) {
    UpOptions opts;
    opts.vms = static_cast<int>(integer_in_range("--vms", args.vms, kMinVms, kMaxVms));
    opts.mem_mib = static_cast<int>(integer_in_range("--mem", args.mem, kMinMemMib, kMaxMemMib));
    opts.cpus = static_cast<int>(integer_in_range(
        "--cpus", args.cpus, 1, host_cpus, "this host has " + std::to_string(host_cpus) + " CPUs"));

    auto accel = parse_accel(args.accel);
    if (!accel)
        throw UsageError("--accel must be auto, kvm or tcg, not '" + args.accel + "'");
    opts.accel = *accel;

    auto net = parse_net_mode(args.net);
    if (!net)
        throw UsageError("--net must be virtio-tap, virtio-socket or partlink, not '" + args.net +
                         "'");
    opts.net = *net;

    if (args.ssh_port) {
        auto base = integer_in_range("--ssh-port", *args.ssh_port, 1, 65535);
        long long last = base + opts.vms - 1;
        if (last > 65535)
            throw UsageError("--ssh-port " + std::to_string(base) + " leaves no room for " +
                             std::to_string(opts.vms) + " VMs (the last would get port " +
                             std::to_string(last) + "); pick a lower base");
        opts.ssh_port_base = static_cast<std::uint16_t>(base);
    }

    opts.timeout =
        std::chrono::seconds(integer_in_range("--timeout", args.timeout, 1, kMaxTimeoutSeconds));

    if (opts.net == NetMode::VirtioSocket && opts.vms != 2)
        throw UsageError("--net virtio-socket connects exactly 2 VMs (QEMU's -netdev stream is "
                         "point to point); use --vms 2, or --net virtio-tap for " +
                         std::to_string(opts.vms));
    if (args.fabric_config) {
        if (opts.net != NetMode::Partlink)
            throw UsageError("--fabric-config is for --net partlink (partlinkd's networks), not "
                             "--net " +
                             std::string(to_string(opts.net)));
        if (args.fabric_config->empty())
            throw UsageError("--fabric-config must not be empty");
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::path file = fs::absolute(*args.fabric_config, ec);
        if (ec || !fs::is_regular_file(file, ec))
            throw UsageError("--fabric-config " + *args.fabric_config + ": no such file");
        if (!std::ifstream(file))
            throw UsageError("--fabric-config " + *args.fabric_config + ": cannot read it");
        // partlinkd reads it the same way: a bad file is refused here, not in its log.
        try {
            opts.fabric_wlm = fabric::Config::load(file).wlm();
        } catch (const Error& e) {
            throw UsageError("--fabric-config: " + std::string(e.what()));
        }
        opts.fabric_config = file.lexically_normal();
    }
    opts.cgroups = !args.no_cgroups;
    if (args.policy)
        validate_policy_arg(opts, *args.policy, host_cpus);
    if (args.segments)
        validate_segments_arg(opts, *args.segments);
    return opts;
}

void validate_vm_arg(std::string_view command, const std::string& vm) {
    const std::string example = "e.g. partlink " + std::string(command) + " vm2";
    if (vm.empty())
        throw UsageError(std::string(command) + " needs a partition name, " + example);
    if (!parse_vm_name(vm))
        throw UsageError("'" + vm + "' is not a partition name: partitions are vm1 to vm" +
                         std::to_string(kMaxVms) + ", " + example);
}

StartOptions validate_start_args(const StartArgs& args) {
    validate_vm_arg("start", args.vm);
    StartOptions opts;
    opts.vm = args.vm;
    if (args.timeout)
        opts.timeout = std::chrono::seconds(
            integer_in_range("--timeout", *args.timeout, 1, kMaxTimeoutSeconds));
    return opts;
}

int host_cpu_count() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    unsigned n = std::thread::hardware_concurrency();
    return n > 0 ? static_cast<int>(n) : 1;
}

std::optional<int> parse_vm_name(std::string_view name) {
    if (!name.starts_with("vm"))
        return std::nullopt;
    std::string_view digits = name.substr(2);
    if (digits.empty() || digits.front() == '0')
        return std::nullopt;
    for (char c : digits)
        if (c < '0' || c > '9')
            return std::nullopt;
    auto value = parse_integer(digits);
    if (!value || *value < kMinVms || *value > kMaxVms)
        return std::nullopt;
    return static_cast<int>(*value);
}

std::string vm_name(int index) {
    return "vm" + std::to_string(index);
}

} // namespace partlink
