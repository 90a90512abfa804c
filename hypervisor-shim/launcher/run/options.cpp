#include "run/options.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sched.h>
#include <set>
#include <sstream>
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
    opts.policy_file = file;
    opts.policy = std::move(policy);
}

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

std::filesystem::path existing_path(const std::string& option, const std::string& value,
                                    bool directory_allowed) {
    namespace fs = std::filesystem;
    if (value.empty())
        throw UsageError(option + " must not be empty");
    std::error_code ec;
    fs::path abs = fs::absolute(value, ec);
    if (ec || !fs::exists(abs, ec))
        throw UsageError(option + " " + value + ": no such file");
    if (!directory_allowed && !fs::is_regular_file(abs, ec))
        throw UsageError(option + " " + value + ": not a file");
    return abs.lexically_normal();
}

// The one place that decides which partition is the WLM's: partlinkd lets
// it use the mailbox (fabric config) and send directives (policy), and
// refuses to start if the two disagree.
std::string resolve_wlm_partition(const UpOptions& opts,
                                  const std::optional<std::string>& fabric_wlm) {
    if (opts.policy) {
        const std::string& privileged = opts.policy->privileged;
        if (opts.fabric_config && fabric_wlm != privileged)
            throw UsageError("--policy " + opts.policy_file->string() + " makes " + privileged +
                             " the WLM partition but --fabric-config " +
                             opts.fabric_config->string() +
                             (fabric_wlm ? " names " + *fabric_wlm : " names none") +
                             "; set \"wlm\": \"" + privileged + "\" in the fabric config");
        return privileged;
    }
    if (fabric_wlm) {
        auto index = parse_vm_name(*fabric_wlm);
        if (!index || *index > opts.vms)
            throw UsageError("--fabric-config " + opts.fabric_config->string() + " names " +
                             *fabric_wlm + " as the WLM partition, but the run has vm1..vm" +
                             std::to_string(opts.vms));
        return *fabric_wlm;
    }
    return kDefaultWlmPartition;
}

void validate_boot_args(UpOptions& opts, const UpArgs& args) {
    BootOptions& boot = opts.boot;
    if (args.kernel)
        boot.kernel = existing_path("--kernel", *args.kernel, true);
    if (args.initrd)
        boot.initrd = existing_path("--initrd", *args.initrd, false);
    if (args.append) {
        if (args.append->find('\n') != std::string::npos)
            throw UsageError("--append must be one line");
        boot.append = *args.append;
    }
    std::set<std::string> tags;
    for (const auto& text : args.shares) {
        Share share = parse_share(text);
        if (!tags.insert(share.tag).second)
            throw UsageError("--share: two folders have the tag '" + share.tag +
                             "'; name one: DIR:TAG");
        boot.shares.push_back(std::move(share));
    }
    boot.gdb = args.gdb;
    for (const auto& text : args.qemu_args)
        boot.qemu_args.push_back(parse_qemu_arg(text, opts.vms));
}

} // namespace

UpOptions validate_up_args(const UpArgs& args, int host_cpus) {
    UpOptions opts;
    std::optional<std::string> fabric_wlm; // the --fabric-config's "wlm"
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
            fabric_wlm = fabric::Config::load(file).wlm();
        } catch (const Error& e) {
            throw UsageError("--fabric-config: " + std::string(e.what()));
        }
        opts.fabric_config = file.lexically_normal();
    }
    opts.cgroups = !args.no_cgroups;
    if (args.policy)
        validate_policy_arg(opts, *args.policy, host_cpus);
    opts.wlm = resolve_wlm_partition(opts, fabric_wlm);
    if (args.segments)
        validate_segments_arg(opts, *args.segments);
    validate_boot_args(opts, args);
    opts.dry_run = args.dry_run;
    return opts;
}

Share parse_share(std::string_view text) {
    namespace fs = std::filesystem;
    const std::string example = " (e.g. --share ~/src/linux:linux:rw)";
    std::string rest(text);
    Share share;
    for (std::string_view mode : {":rw", ":ro"}) {
        if (rest.ends_with(mode)) {
            share.writable = mode == ":rw";
            rest.resize(rest.size() - mode.size());
            break;
        }
    }
    std::string dir = rest;
    if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        dir = rest.substr(0, colon);
        share.tag = rest.substr(colon + 1);
    }
    if (dir.empty())
        throw UsageError("--share needs a folder: DIR[:TAG][:rw]" + example);
    std::error_code ec;
    fs::path abs = fs::absolute(dir, ec);
    if (ec || !fs::is_directory(abs, ec))
        throw UsageError("--share " + std::string(text) + ": " + dir + " is not a folder" +
                         example);
    // "dir/" normalises to "dir/", whose filename (the default tag) is empty.
    share.dir = abs.lexically_normal();
    if (!share.dir.has_filename() && share.dir != share.dir.root_path())
        share.dir = share.dir.parent_path();
    if (share.tag.empty())
        share.tag = share.dir.filename().string();
    // The tag names the mount point /mnt/TAG and must survive the kernel
    // command line: no spaces, colons or slashes.
    const bool tag_ok = !share.tag.empty() && share.tag.size() <= kMaxShareTagLength &&
                        std::all_of(share.tag.begin(), share.tag.end(),
                                    [](char c) {
                                        return std::isalnum(static_cast<unsigned char>(c)) ||
                                               c == '-' || c == '_' || c == '.';
                                    }) &&
                        share.tag != "." && share.tag != "..";
    if (!tag_ok)
        throw UsageError("--share " + std::string(text) + ": tag '" + share.tag + "' must be 1.." +
                         std::to_string(kMaxShareTagLength) +
                         " letters, digits, '-', '_' or '.'; give one: DIR:TAG" + example);
    return share;
}

QemuArg parse_qemu_arg(std::string_view text, int vms) {
    QemuArg arg;
    std::string_view words = text;
    if (auto colon = text.find(':'); colon != std::string_view::npos) {
        if (auto index = parse_vm_name(text.substr(0, colon))) {
            if (*index > vms)
                throw UsageError("--qemu-arg " + std::string(text) + ": there is no " +
                                 std::string(text.substr(0, colon)) + " (--vms " +
                                 std::to_string(vms) + ")");
            arg.vm = *index;
            words = text.substr(colon + 1);
        }
    }
    std::istringstream in{std::string(words)};
    for (std::string w; in >> w;)
        arg.words.push_back(w);
    if (arg.words.empty())
        throw UsageError("--qemu-arg needs QEMU options, e.g. --qemu-arg '-d guest_errors' or "
                         "--qemu-arg 'vm2:-d guest_errors'");
    return arg;
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
