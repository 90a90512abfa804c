// The cgroup v1 `cpu` hierarchy: cpu.cfs_quota_us / cpu.cfs_period_us,
// cpu.shares, tasks.
#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <system_error>

#include "cgroup_impl.hpp"

namespace fs = std::filesystem;

namespace partlink::capacity {

namespace {

// /proc/PID/task lists the thread ids; empty if the process is gone.
std::vector<pid_t> thread_ids(const fs::path& task_dir) {
    std::vector<pid_t> tids;
    std::error_code ec;
    for (fs::directory_iterator it(task_dir, ec), end; !ec && it != end; it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit))
            tids.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return tids;
}

} // namespace

void CpuControllerV1::check_access() {
    const auto base = root() / kPartlinkGroup;
    std::error_code ec;
    if (!fs::is_directory(base, ec))
        dir_ops().create(base);
    for (const char* file : {"tasks", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"})
        require_writable(base / file);
}

fs::path CpuControllerV1::create_group(const fs::path& relative) {
    // v1 needs nothing from the parents: every group has the cpu files, and
    // our intermediate groups stay unlimited (a v1 child's quota may not
    // exceed its parent's).
    return make_path(relative, [](const fs::path&) {});
}

void CpuControllerV1::move_pid(const fs::path& group, pid_t pid) {
    const auto dir = under_root(group);
    const auto task_dir = proc_root() / std::to_string(pid) / "task";
    // cgroup.procs moves the whole thread group at once.  The kernel
    // refuses it for a process that cannot be moved as a whole (and a fake
    // tree does not act on it), so the pass over its threads below follows
    // either way: writing a thread already in the group is a no-op.
    if (const int err =
            try_write_control(dir / "cgroup.procs", std::to_string(pid), WriteMode::append);
        err == ESRCH)
        throw CgroupError("cannot move process " + std::to_string(pid) + " into " + dir.string() +
                          ": it does not exist");
    // v1 moves one thread per write to `tasks`.  A thread not yet moved may
    // create another meanwhile (QEMU starts vCPU threads lazily), so repeat
    // until a pass finds no thread we have not moved.
    std::set<pid_t> moved;
    for (int pass = 0; pass < 10; ++pass) {
        const auto tids = thread_ids(task_dir);
        if (tids.empty() && moved.empty())
            throw CgroupError("cannot move process " + std::to_string(pid) + " into " +
                              dir.string() + ": it does not exist (no " + task_dir.string() + ")");
        bool moved_any = false;
        for (const pid_t tid : tids) {
            if (moved.contains(tid))
                continue;
            const int err =
                try_write_control(dir / "tasks", std::to_string(tid), WriteMode::append);
            if (err != 0 && err != ESRCH) // ESRCH: the thread has just exited
                throw_cgroup_error("moving thread " + std::to_string(tid) + " of process " +
                                       std::to_string(pid) + ": writing to",
                                   dir / "tasks", err);
            moved.insert(tid);
            moved_any = true;
        }
        if (!moved_any)
            return;
    }
    throw CgroupError("process " + std::to_string(pid) +
                      " keeps creating threads while they are moved into " + dir.string() +
                      ": retry once it has started");
}

void CpuControllerV1::set_cap(const fs::path& group, const CpuCap& cap) {
    const auto dir = under_root(group);
    if (cap.period_us < kMinPeriodUs || cap.period_us > kMaxPeriodUs)
        throw CgroupError("CPU period " + std::to_string(cap.period_us) +
                          " us is outside the kernel's 1000..1000000 us");
    const std::string quota = cap.quota_us ? std::to_string(*cap.quota_us) : "-1";
    const int period_err =
        try_write_control(dir / "cpu.cfs_period_us", std::to_string(cap.period_us));
    if (period_err != 0)
        throw_cgroup_error("writing '" + std::to_string(cap.period_us) + "' to",
                           dir / "cpu.cfs_period_us", period_err);
    if (const int err = try_write_control(dir / "cpu.cfs_quota_us", quota); err != 0)
        throw_cgroup_error("writing '" + quota + "' to", dir / "cpu.cfs_quota_us", err,
                           err == EINVAL ? "on cgroup v1 a group's quota may not exceed its "
                                           "parent's, and must be at least 1000 us"
                                         : "");
}

CpuCap CpuControllerV1::cap(const fs::path& group) const {
    const auto dir = under_root(group);
    const auto quota =
        parse_integer(read_control(dir / "cpu.cfs_quota_us"), dir / "cpu.cfs_quota_us");
    const auto period =
        parse_integer(read_control(dir / "cpu.cfs_period_us"), dir / "cpu.cfs_period_us");
    if (period <= 0)
        throw CgroupError(dir.string() + "/cpu.cfs_period_us holds " + std::to_string(period) +
                          ", not a period");
    if (quota < 0)
        return CpuCap::unlimited(static_cast<std::uint64_t>(period));
    return CpuCap{static_cast<std::uint64_t>(quota), static_cast<std::uint64_t>(period)};
}

void CpuControllerV1::set_weight(const fs::path& group, std::uint32_t weight) {
    if (weight < kMinWeight || weight > kMaxWeight)
        throw CgroupError("CPU weight " + std::to_string(weight) + " is outside 1..10000");
    write_control(under_root(group) / "cpu.shares", std::to_string(weight_to_shares(weight)));
}

std::uint32_t CpuControllerV1::weight(const fs::path& group) const {
    const auto file = under_root(group) / "cpu.shares";
    const auto shares = parse_integer(read_control(file), file);
    return shares_to_weight(static_cast<std::uint64_t>(std::max<std::int64_t>(shares, 0)));
}

CpuStat CpuControllerV1::stat(const fs::path& group) const {
    const auto dir = under_root(group);
    const auto values = parse_flat_keyed(read_control(dir / "cpu.stat"));
    const auto get = [&](const char* key) {
        const auto it = values.find(key);
        return it == values.end() ? std::uint64_t{0} : it->second;
    };
    CpuStat stat;
    stat.nr_periods = get("nr_periods");
    stat.nr_throttled = get("nr_throttled");
    stat.throttled = std::chrono::microseconds(get("throttled_time") / 1000); // ns
    // cpuacct.usage is here only when cpuacct shares the hierarchy with cpu
    // ("-o cpu,cpuacct"); where it is mounted apart, sum the threads instead.
    std::error_code ec;
    if (fs::exists(dir / "cpuacct.usage", ec)) {
        const auto ns = parse_integer(read_control(dir / "cpuacct.usage"), dir / "cpuacct.usage");
        stat.usage = std::chrono::microseconds(std::max<std::int64_t>(ns, 0) / 1000);
    } else {
        stat.usage = usage_of_tasks(dir);
        stat.usage_approximate = stat.usage.has_value();
    }
    return stat;
}

std::optional<std::chrono::microseconds>
CpuControllerV1::usage_of_tasks(const fs::path& group) const {
    // /proc/TID/schedstat starts with the thread's time on CPU in ns.
    std::uint64_t total_ns = 0;
    for (const auto& tid : split_words(read_control(group / "tasks"))) {
        std::string text;
        try {
            text = read_control(proc_root() / tid / "schedstat");
        } catch (const CgroupError&) {
            continue; // exited since we listed it, or no schedstats in this kernel
        }
        const auto words = split_words(text);
        if (words.empty())
            continue;
        try {
            total_ns += std::stoull(words.front());
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::chrono::microseconds(total_ns / 1000);
}

void CpuControllerV1::remove_group(const fs::path& group) {
    const auto dir = under_root(group);
    refuse_if_has_children(dir);
    // v1 groups may hold tasks at every level, so the parent takes them.
    evacuate(dir, dir.parent_path(), "tasks");
    dir_ops().remove(dir);
}

} // namespace partlink::capacity
