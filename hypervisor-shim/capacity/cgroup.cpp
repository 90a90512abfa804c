#include "cgroup.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "cgroup_impl.hpp"
#include "mountinfo.hpp"

namespace fs = std::filesystem;

namespace partlink::capacity {

namespace {

bool contains(const std::vector<std::string>& words, std::string_view word) {
    return std::find(words.begin(), words.end(), word) != words.end();
}

fs::path under_prefix(const fs::path& prefix, const fs::path& mount_point) {
    return prefix / mount_point.relative_path();
}

std::string slurp(const fs::path& file) {
    std::ifstream in(file);
    if (!in)
        throw Error("cannot read " + file.string() + " to find the cgroup hierarchies");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// A run id or partition name becomes a directory name: one plain component.
void require_component(std::string_view what, std::string_view name) {
    const bool ok =
        !name.empty() && name != "." && name != ".." &&
        std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        });
    if (!ok)
        throw CgroupError("invalid " + std::string(what) + " '" + std::string(name) +
                          "' for a cgroup name: use letters, digits, '-', '_' and '.'");
}

class KernelGroupDirOps final : public GroupDirOps {
public:
    void create(const fs::path& dir) override {
        if (::mkdir(dir.c_str(), 0755) == 0)
            return;
        const int err = errno;
        if (err == EACCES || err == EPERM || err == EROFS)
            // mkdir needs write access to the parent, not to the new group.
            throw CgroupPermissionError("creating cgroup " + dir.string() +
                                        " failed: " + std::strerror(err) + ": " +
                                        permission_advice(dir.parent_path(), err));
        throw_cgroup_error("creating cgroup", dir, err,
                           err == EEXIST ? "left over from an earlier run? move its processes "
                                           "out, then rmdir it"
                                         : "");
    }
    void remove(const fs::path& dir) override {
        if (::rmdir(dir.c_str()) == 0)
            return;
        const int err = errno;
        throw_cgroup_error("removing cgroup", dir, err,
                           err == EBUSY ? "it still holds processes or child groups" : "");
    }
};

} // namespace

std::string_view to_string(CgroupVersion version) {
    return version == CgroupVersion::v1 ? "cgroup v1" : "cgroup v2";
}

CpuHierarchy detect_cpu_hierarchy(const fs::path& mountinfo, const fs::path& root) {
    const auto mounts = parse_mountinfo(slurp(mountinfo));
    std::vector<std::string> seen;
    for (const auto& mount : mounts) {
        if (mount.fstype != "cgroup2")
            continue;
        const auto path = under_prefix(root, mount.mount_point);
        std::string controllers;
        try {
            controllers = read_control(path / "cgroup.controllers");
        } catch (const Error&) {
            seen.push_back("cgroup2 at " + mount.mount_point.string() +
                           " (cgroup.controllers unreadable)");
            continue;
        }
        const auto words = split_words(controllers);
        if (contains(words, "cpu"))
            return {CgroupVersion::v2, path};
        std::string listed;
        for (const auto& word : words)
            listed += (listed.empty() ? "" : " ") + word;
        seen.push_back("cgroup2 at " + mount.mount_point.string() +
                       " without cpu (controllers: " + (listed.empty() ? "none" : listed) + ")");
    }
    for (const auto& mount : mounts) {
        if (mount.fstype == "cgroup" && contains(mount.super_options, "cpu"))
            return {CgroupVersion::v1, under_prefix(root, mount.mount_point)};
    }
    std::string found = seen.empty() ? "no cgroup2 mount" : seen.front();
    for (std::size_t i = 1; i < seen.size(); ++i)
        found += ", " + seen[i];
    throw CgroupError("no CPU controller to enforce capacity with: found " + found +
                      " and no cgroup v1 hierarchy with cpu (in " + mountinfo.string() +
                      "): mount one, e.g. 'mount -t cgroup2 none /sys/fs/cgroup' or 'mkdir -p "
                      "/sys/fs/cgroup/cpu && mount -t cgroup -o cpu cgroup /sys/fs/cgroup/cpu'");
}

CpuCap CpuCap::unlimited(std::uint64_t period_us) {
    return CpuCap{std::nullopt, period_us};
}

CpuCap CpuCap::from_cpus(double cpus, std::uint64_t period_us) {
    if (period_us < kMinPeriodUs || period_us > kMaxPeriodUs)
        throw CgroupError("CPU period " + std::to_string(period_us) +
                          " us is outside the kernel's 1000..1000000 us");
    // The upper bound only keeps the arithmetic sane; no host comes near it.
    if (!std::isfinite(cpus) || cpus <= 0 || cpus > 1e6)
        throw CgroupError("a CPU cap must be a positive number of CPUs, not " +
                          std::to_string(cpus));
    const auto quota = static_cast<std::uint64_t>(std::llround(cpus * double(period_us)));
    if (quota < kMinQuotaUs)
        throw CgroupError("a cap of " + std::to_string(cpus) +
                          " CPU is below the kernel's minimum quota of 1 ms per period (" +
                          std::to_string(double(kMinQuotaUs) / double(period_us)) + " CPU)");
    return CpuCap{quota, period_us};
}

std::optional<double> CpuCap::cpus() const {
    if (!quota_us)
        return std::nullopt;
    return double(*quota_us) / double(period_us);
}

std::string CpuCap::describe() const {
    if (!quota_us)
        return "unlimited";
    char text[64];
    std::snprintf(text, sizeof text, "%g CPU (%llu/%llu us)", *cpus(),
                  static_cast<unsigned long long>(*quota_us),
                  static_cast<unsigned long long>(period_us));
    return text;
}

std::uint64_t weight_to_shares(std::uint32_t weight) {
    const std::uint64_t w = std::clamp(weight, kMinWeight, kMaxWeight);
    return std::clamp<std::uint64_t>((w * 1024 + kDefaultWeight / 2) / kDefaultWeight, kMinShares,
                                     kMaxShares);
}

std::uint32_t shares_to_weight(std::uint64_t shares) {
    const std::uint64_t s = std::clamp(shares, kMinShares, kMaxShares);
    return static_cast<std::uint32_t>(
        std::clamp<std::uint64_t>((s * kDefaultWeight + 512) / 1024, kMinWeight, kMaxWeight));
}

std::shared_ptr<GroupDirOps> kernel_group_dir_ops() {
    return std::make_shared<KernelGroupDirOps>();
}

void require_writable(const fs::path& file) {
    if (::faccessat(AT_FDCWD, file.c_str(), W_OK, AT_EACCESS) == 0)
        return;
    const int err = errno;
    throw_cgroup_error("checking write access to", file, err,
                       err == ENOENT ? "is the cpu controller enabled for this cgroup?" : "");
}

// --- CpuController ---------------------------------------------------------

CpuController::CpuController(fs::path root, ControllerOptions options)
    : root_(std::move(root).lexically_normal())
    , proc_root_(std::move(options.proc_root))
    , dir_ops_(options.dir_ops ? std::move(options.dir_ops) : kernel_group_dir_ops()) {
    // lexically_normal keeps a trailing slash as an empty last component.
    if (!root_.has_filename() && root_ != root_.root_path())
        root_ = root_.parent_path();
}

fs::path CpuController::under_root(const fs::path& group) const {
    const auto normal = group.lexically_normal();
    const auto relative = normal.lexically_relative(root_);
    if (relative.empty() || relative == "." || *relative.begin() == "..")
        throw CgroupError("refusing to touch " + group.string() + ": it is not a group under " +
                          root_.string());
    return normal;
}

std::vector<pid_t> CpuController::processes(const fs::path& group) const {
    std::vector<pid_t> pids;
    for (const auto& word : split_words(read_control(under_root(group) / "cgroup.procs")))
        pids.push_back(static_cast<pid_t>(std::stol(word)));
    return pids;
}

fs::path CpuController::make_path(const fs::path& relative,
                                  const std::function<void(const fs::path&)>& before_each) {
    if (relative.empty() || relative.is_absolute())
        throw CgroupError("a cgroup must be given relative to the hierarchy root, not '" +
                          relative.string() + "'");
    const auto target = under_root(root_ / relative);
    fs::path dir = root_;
    for (const auto& part : target.lexically_relative(root_)) {
        const fs::path parent = dir;
        dir /= part;
        const bool last = dir == target;
        std::error_code ec;
        if (!last && fs::is_directory(dir, ec))
            continue;
        before_each(parent);
        dir_ops_->create(dir);
    }
    return target;
}

void CpuController::evacuate(const fs::path& group, const fs::path& target,
                             std::string_view list_file) {
    // A process may fork, or a thread spawn, while we move: repeat until the
    // group reads empty, within reason.
    for (int pass = 0; pass < 10; ++pass) {
        const auto ids = split_words(read_control(group / list_file));
        if (ids.empty())
            return;
        for (const auto& id : ids) {
            const int err = try_write_control(target / list_file, id, WriteMode::append);
            if (err != 0 && err != ESRCH) // ESRCH: it exited meanwhile, which is as good
                throw_cgroup_error("moving " + id + " out of " + group.string() + ": writing to",
                                   target / list_file, err);
        }
    }
    throw CgroupError(group.string() + " keeps gaining processes while they are moved out: stop "
                                       "what runs in it, then retry");
}

void CpuController::refuse_if_has_children(const fs::path& group) const {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(group, ec)) {
        if (entry.is_directory(ec))
            throw CgroupError("not removing " + group.string() + ": it has a child group " +
                              entry.path().filename().string() + "; remove that first");
    }
}

std::shared_ptr<CpuController> make_cpu_controller(const CpuHierarchy& hierarchy,
                                                   ControllerOptions options) {
    if (hierarchy.version == CgroupVersion::v1)
        return std::make_shared<CpuControllerV1>(hierarchy.path, std::move(options));
    return std::make_shared<CpuControllerV2>(hierarchy.path, std::move(options));
}

// --- PartitionCgroup -------------------------------------------------------

PartitionCgroup::PartitionCgroup(std::shared_ptr<CpuController> controller, fs::path path,
                                 bool prune_parent)
    : controller_(std::move(controller))
    , path_(std::move(path))
    , prune_parent_(prune_parent) {}

PartitionCgroup PartitionCgroup::create(std::shared_ptr<CpuController> controller,
                                        std::string_view run_id, std::string_view partition) {
    require_component("run id", run_id);
    require_component("partition name", partition);
    auto path = controller->create_group(fs::path(kPartlinkGroup) / run_id / partition);
    return PartitionCgroup(std::move(controller), std::move(path), true);
}

PartitionCgroup PartitionCgroup::create_at(std::shared_ptr<CpuController> controller,
                                           const fs::path& relative) {
    auto path = controller->create_group(relative);
    return PartitionCgroup(std::move(controller), std::move(path), false);
}

PartitionCgroup::PartitionCgroup(PartitionCgroup&& other) noexcept
    : controller_(std::move(other.controller_))
    , path_(std::exchange(other.path_, {}))
    , prune_parent_(other.prune_parent_) {}

PartitionCgroup& PartitionCgroup::operator=(PartitionCgroup&& other) noexcept {
    if (this != &other) {
        remove_noexcept();
        controller_ = std::move(other.controller_);
        path_ = std::exchange(other.path_, {});
        prune_parent_ = other.prune_parent_;
    }
    return *this;
}

PartitionCgroup::~PartitionCgroup() {
    remove_noexcept();
}

void PartitionCgroup::remove() {
    if (!owns())
        return;
    const auto path = path_;
    controller_->remove_group(path);
    path_.clear();
    if (!prune_parent_)
        return;
    // The run directory goes with its last partition; while others remain,
    // the kernel (or the fake) refuses with EBUSY/ENOTEMPTY, which is fine.
    const auto run_dir = path.parent_path();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(run_dir, ec))
        if (entry.is_directory(ec))
            return;
    controller_->remove_group(run_dir);
}

void PartitionCgroup::remove_noexcept() noexcept {
    try {
        remove();
    } catch (const std::exception& e) {
        // A destructor cannot throw, but a group left behind must not go
        // unnoticed either.
        std::fprintf(stderr, "partlink: warning: %s\n", e.what());
        path_.clear();
    }
}

fs::path PartitionCgroup::release() {
    return std::exchange(path_, {});
}

} // namespace partlink::capacity
