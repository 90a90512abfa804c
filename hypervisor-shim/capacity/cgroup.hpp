// CPU capacity through cgroups: which hierarchy the host has, and one
// interface over cgroup v2 (cpu.max, cpu.weight) and the cgroup v1 `cpu`
// hierarchy (cpu.cfs_quota_us, cpu.shares).
//
// Callers speak in CPUs and cgroup v2 weights; the v1 implementation
// converts.  Every group path is absolute and must lie under the hierarchy
// root: the controller refuses to touch anything else.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "cgroup_io.hpp"

namespace partlink::capacity {

enum class CgroupVersion { v1, v2 };
std::string_view to_string(CgroupVersion version);

struct CpuHierarchy {
    CgroupVersion version = CgroupVersion::v2;
    std::filesystem::path path; // the mount point (under the root prefix given to detection)
};

// Finds the hierarchy that holds the CPU controller.  cgroup v2 wins when a
// cgroup2 mount lists `cpu` in cgroup.controllers; otherwise a cgroup v1
// mount with the `cpu` option.  `root` prefixes every mount point, so a test
// can point both arguments at a fake tree.  Throws, saying what was found and
// what to mount, when there is neither.
CpuHierarchy detect_cpu_hierarchy(const std::filesystem::path& mountinfo = "/proc/self/mountinfo",
                                  const std::filesystem::path& root = "/");

// CFS bandwidth limits the kernel accepts (kernel/sched/core.c).
inline constexpr std::uint64_t kDefaultPeriodUs = 100'000;
inline constexpr std::uint64_t kMinPeriodUs = 1'000;
inline constexpr std::uint64_t kMaxPeriodUs = 1'000'000;
inline constexpr std::uint64_t kMinQuotaUs = 1'000;

// A bandwidth cap: `quota_us` of CPU time every `period_us`, or no limit.
struct CpuCap {
    std::optional<std::uint64_t> quota_us; // nullopt: unlimited
    std::uint64_t period_us = kDefaultPeriodUs;

    static CpuCap unlimited(std::uint64_t period_us = kDefaultPeriodUs);
    // 0.5 CPU -> 50000 us per 100000 us.  Throws if `cpus` is not finite and
    // positive, or is below the kernel's 1 ms minimum quota.
    static CpuCap from_cpus(double cpus, std::uint64_t period_us = kDefaultPeriodUs);

    bool is_unlimited() const { return !quota_us.has_value(); }
    std::optional<double> cpus() const;
    std::string describe() const; // "0.5 CPU (50000/100000 us)" or "unlimited"
    bool operator==(const CpuCap&) const = default;
};

// Weights are cgroup v2's cpu.weight; v1 stores cpu.shares.  The conversion
// is the kernel's own (what cpu.weight reads on a v1-shares group): weight
// 100 = 1024 shares, both the defaults.
inline constexpr std::uint32_t kMinWeight = 1;
inline constexpr std::uint32_t kMaxWeight = 10'000;
inline constexpr std::uint32_t kDefaultWeight = 100;
inline constexpr std::uint64_t kMinShares = 2;
inline constexpr std::uint64_t kMaxShares = 262'144;
std::uint64_t weight_to_shares(std::uint32_t weight);
std::uint32_t shares_to_weight(std::uint64_t shares);

struct CpuStat {
    std::uint64_t nr_periods = 0;   // enforcement periods in which the group ran
    std::uint64_t nr_throttled = 0; // of those, periods in which it hit its quota
    std::chrono::microseconds throttled{0};
    std::optional<std::chrono::microseconds> usage;
    // v1 without cpuacct in the hierarchy: the sum over the threads now in
    // the group, which forgets threads that have exited.
    bool usage_approximate = false;
};

// Creating and removing a group directory.  On cgroupfs the kernel fills a
// new directory with control files and empties it on rmdir; a fake tree in
// a test has to do that itself, which is all this seam is for.
class GroupDirOps {
public:
    virtual ~GroupDirOps() = default;
    virtual void create(const std::filesystem::path& dir) = 0;
    virtual void remove(const std::filesystem::path& dir) = 0;
};
std::shared_ptr<GroupDirOps> kernel_group_dir_ops();

struct ControllerOptions {
    std::filesystem::path proc_root = "/proc"; // for /proc/PID/task and /proc/TID/schedstat
    std::shared_ptr<GroupDirOps> dir_ops;      // null: the kernel's mkdir/rmdir
};

// partlinkd's groups live under <hierarchy>/partlink/<run-id>/<partition>.
inline constexpr std::string_view kPartlinkGroup = "partlink";

class CpuController {
public:
    virtual ~CpuController() = default;
    CpuController(const CpuController&) = delete;
    CpuController& operator=(const CpuController&) = delete;

    virtual CgroupVersion version() const = 0;
    const std::filesystem::path& root() const { return root_; }

    // Called at start: creates <root>/partlink and checks that the files
    // partlinkd will write are writable, throwing a CgroupPermissionError
    // naming the first one that is not and what to do about it.
    virtual void check_access() = 0;

    // Creates root/relative, and any missing parents (on v2, enabling the
    // cpu controller down the path).  The last component must not exist yet.
    virtual std::filesystem::path create_group(const std::filesystem::path& relative) = 0;
    // Moves every thread of `pid` into `group`.
    virtual void move_pid(const std::filesystem::path& group, pid_t pid) = 0;
    virtual void set_cap(const std::filesystem::path& group, const CpuCap& cap) = 0;
    virtual CpuCap cap(const std::filesystem::path& group) const = 0;
    virtual void set_weight(const std::filesystem::path& group, std::uint32_t weight) = 0;
    virtual std::uint32_t weight(const std::filesystem::path& group) const = 0;
    virtual CpuStat stat(const std::filesystem::path& group) const = 0;
    std::vector<pid_t> processes(const std::filesystem::path& group) const;
    // Removes an empty group.  Processes still in it are moved out first (to
    // the parent, or on v2 to the nearest ancestor allowed to hold
    // processes); a group with child groups is refused.
    virtual void remove_group(const std::filesystem::path& group) = 0;

protected:
    CpuController(std::filesystem::path root, ControllerOptions options);

    // `group`, checked to lie strictly under the hierarchy root.
    std::filesystem::path under_root(const std::filesystem::path& group) const;
    GroupDirOps& dir_ops() const { return *dir_ops_; }
    const std::filesystem::path& proc_root() const { return proc_root_; }
    // Creates the missing directories of root/relative; the last must be new.
    // `before_each(parent)` runs before each directory is made in `parent`.
    std::filesystem::path
    make_path(const std::filesystem::path& relative,
              const std::function<void(const std::filesystem::path&)>& before_each);
    // Moves ids (listed in group/list_file) to target/list_file, repeating
    // while new ones appear (a process may fork meanwhile).
    void evacuate(const std::filesystem::path& group, const std::filesystem::path& target,
                  std::string_view list_file);
    void refuse_if_has_children(const std::filesystem::path& group) const;

private:
    std::filesystem::path root_;
    std::filesystem::path proc_root_;
    std::shared_ptr<GroupDirOps> dir_ops_;
};

std::shared_ptr<CpuController> make_cpu_controller(const CpuHierarchy& hierarchy,
                                                   ControllerOptions options = {});

// Owns one cgroup directory: created on construction, emptied and removed
// on destruction (a partlinkd that fails half way leaves no groups behind).
// The controller is shared so that it outlives every group it made.
class PartitionCgroup {
public:
    // <root>/partlink/<run_id>/<partition>; the run directory is removed with
    // the last of its partitions.  Both names must be plain path components.
    static PartitionCgroup create(std::shared_ptr<CpuController> controller,
                                  std::string_view run_id, std::string_view partition);
    // Any group under the hierarchy root (the real-cgroup test uses this).
    static PartitionCgroup create_at(std::shared_ptr<CpuController> controller,
                                     const std::filesystem::path& relative);

    PartitionCgroup(PartitionCgroup&& other) noexcept;
    PartitionCgroup& operator=(PartitionCgroup&& other) noexcept;
    PartitionCgroup(const PartitionCgroup&) = delete;
    PartitionCgroup& operator=(const PartitionCgroup&) = delete;
    ~PartitionCgroup();

    const std::filesystem::path& path() const { return path_; }
    bool owns() const { return !path_.empty(); }
    CpuController& controller() const { return *controller_; }

    void move_pid(pid_t pid) { controller_->move_pid(path_, pid); }
    void set_cap(const CpuCap& cap) { controller_->set_cap(path_, cap); }
    CpuCap cap() const { return controller_->cap(path_); }
    void set_weight(std::uint32_t weight) { controller_->set_weight(path_, weight); }
    std::uint32_t weight() const { return controller_->weight(path_); }
    CpuStat stat() const { return controller_->stat(path_); }

    // Removes the group now, throwing on failure; afterwards owns() is false.
    void remove();
    // Gives up ownership: the directory outlives this object.
    std::filesystem::path release();

private:
    PartitionCgroup(std::shared_ptr<CpuController> controller, std::filesystem::path path,
                    bool prune_parent);
    void remove_noexcept() noexcept;

    std::shared_ptr<CpuController> controller_;
    std::filesystem::path path_;
    bool prune_parent_ = false; // remove the run directory when it empties
};

} // namespace partlink::capacity
