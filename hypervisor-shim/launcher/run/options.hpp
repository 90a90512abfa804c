// What a user may ask `partlink up` for, and the rules that decide whether a
// request is valid.  Pure: unit-tested without a host to run guests on.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capacity/policy.hpp"

namespace partlink {

inline constexpr int kMinVms = 1;
inline constexpr int kMaxVms = 16;
inline constexpr int kMinMemMib = 128;
inline constexpr int kMaxMemMib = 16384;
inline constexpr int kMaxTimeoutSeconds = 24 * 60 * 60;
inline constexpr std::size_t kMaxShareTagLength = 31;
inline constexpr const char* kDefaultWlmPartition = "vm1";

enum class Accel { Auto, Kvm, Tcg };
// partlink (the default): the one-copy adapter, joined by partlinkd;
// virtio-tap: virtio-net on a Linux bridge; virtio-socket: virtio-net over
// QEMU's point-to-point -netdev stream.
enum class NetMode { VirtioTap, VirtioSocket, Partlink };

std::string_view to_string(Accel accel);
std::string_view to_string(NetMode net);
std::optional<Accel> parse_accel(std::string_view text);
std::optional<NetMode> parse_net_mode(std::string_view text);

// `up` options as typed on the command line, before validation; the
// defaults are the documented ones.
struct UpArgs {
    std::string vms = "2";
    std::string mem = "512";
    std::string cpus = "1";
    std::string accel = "auto";
    std::string net = "partlink";
    std::optional<std::string> fabric_config; // --fabric-config FILE
    std::optional<std::string> ssh_port;
    std::string timeout = "180";
    bool no_cgroups = false;             // --no-cgroups
    std::optional<std::string> policy;   // --policy FILE
    std::optional<std::string> segments; // --segments FILE
    // The developer loop's options.
    std::optional<std::string> kernel;  // --kernel BZIMAGE|TREE
    std::optional<std::string> append;  // --append "ARGS"
    std::optional<std::string> initrd;  // --initrd FILE
    std::vector<std::string> shares;    // --share DIR[:TAG][:rw], repeated
    bool gdb = false;                   // --gdb
    std::vector<std::string> qemu_args; // --qemu-arg [vmN:]ARGS, repeated
    bool dry_run = false;               // --dry-run
};

// A host folder in every guest (`--share`): 9p, mounted at /mnt/TAG.
struct Share {
    std::filesystem::path dir; // absolute
    std::string tag;
    bool writable = false;
    bool operator==(const Share&) const = default;
};

// Words for QEMU's command line (`--qemu-arg`), for one partition or all.
struct QemuArg {
    int vm = 0; // 0: every partition
    std::vector<std::string> words;
    bool operator==(const QemuArg&) const = default;
};

// How each partition boots beyond the defaults: what the developer loop asks
// for.  Recorded in the run's state so that `start` boots a partition again
// the same way.
struct BootOptions {
    // --kernel as given (absolute): a bzImage or a kernel build tree;
    // nothing: the image's kernel.
    std::optional<std::filesystem::path> kernel;
    std::string append; // added to the kernel command line
    std::optional<std::filesystem::path> initrd;
    std::vector<Share> shares;
    bool gdb = false;
    std::vector<QemuArg> qemu_args;
    bool operator==(const BootOptions&) const = default;
};

struct UpOptions {
    int vms = 2;
    int mem_mib = 512;
    int cpus = 1;
    Accel accel = Accel::Auto;
    NetMode net = NetMode::Partlink;
    // partlinkd's configuration (networks, WLM partition) given by the user,
    // absolute; nothing: `up` writes one network of every partition, WLM vm1.
    std::optional<std::filesystem::path> fabric_config;
    std::optional<std::uint16_t> ssh_port_base; // VM N gets base + N - 1
    std::chrono::seconds timeout{180};
    // Each partition's QEMU in its own CPU cgroup (false: --no-cgroups).
    bool cgroups = true;
    // --policy FILE (absolute) and what it says, checked against the host's
    // CPUs and the run's partitions; nothing: the default policy (an equal
    // share each, WLM partition `wlm`).
    std::optional<std::filesystem::path> policy_file;
    std::optional<capacity::Policy> policy;
    // The run's WLM partition, decided once (resolve in validate_up_args):
    // the --policy's privileged partition, else the --fabric-config's
    // "wlm", else vm1.  The default fabric config and the default policy
    // both take it from here.
    std::string wlm = kDefaultWlmPartition;
    // --segments FILE (absolute): the shared segments' table, checked
    // against vm1..vmN.
    std::optional<std::filesystem::path> segments;
    BootOptions boot;
    // --dry-run: print each QEMU command line, start nothing.
    bool dry_run = false;
};

// Throws UsageError naming the offending option and its valid range (and
// if --fabric-config or --policy names no readable, valid file, or a policy
// that does not fit vm1..vmN or names another WLM partition than the
// --fabric-config).
UpOptions validate_up_args(const UpArgs& args, int host_cpus);

// `start VM` and `stop VM` as typed: the partition, and for `start` how long
// to wait for it.
struct StartArgs {
    std::string vm;
    std::optional<std::string> timeout; // --timeout SECONDS
};

struct StartOptions {
    std::string vm;                              // "vm1".."vm16"
    std::optional<std::chrono::seconds> timeout; // nothing: the run's own (`up --timeout`)
};

// `--share DIR[:TAG][:rw|:ro]`: the folder must exist; TAG defaults to its
// name.  Throws UsageError.
Share parse_share(std::string_view text);
// `--qemu-arg [vmN:]ARGS`: ARGS split at white space.  Throws UsageError,
// also for a vmN beyond `vms`.
QemuArg parse_qemu_arg(std::string_view text, int vms);

// Throws UsageError if `vm` cannot name a partition (vm1..vm16), naming
// `command` ("start", "stop") in the message.
void validate_vm_arg(std::string_view command, const std::string& vm);
StartOptions validate_start_args(const StartArgs& args);

// The CPUs this process may run on (what `nproc` prints).
int host_cpu_count();

// Partition names are "vm1".."vm16"; returns the index or nothing.
std::optional<int> parse_vm_name(std::string_view name);
std::string vm_name(int index);

} // namespace partlink
