// cgroup v2: cpu.max, cpu.weight, cgroup.procs, cgroup.subtree_control.
#include <algorithm>
#include <cerrno>
#include <string>

#include "cgroup_impl.hpp"

namespace fs = std::filesystem;

namespace partlink::capacity {

namespace {

bool lists(const fs::path& file, std::string_view word) {
    const auto words = split_words(read_control(file));
    return std::find(words.begin(), words.end(), word) != words.end();
}

std::string first_line(std::string text) {
    const auto end = text.find('\n');
    return end == std::string::npos ? text : text.substr(0, end);
}

} // namespace

void CpuControllerV2::check_access() {
    const auto base = root() / kPartlinkGroup;
    std::error_code ec;
    if (!fs::is_directory(base, ec)) {
        enable_cpu_in_subtree(root());
        dir_ops().create(base);
    }
    for (const char* file : {"cgroup.procs", "cgroup.subtree_control", "cpu.max", "cpu.weight"})
        require_writable(base / file);
}

void CpuControllerV2::enable_cpu_in_subtree(const fs::path& parent) {
    // A child group has cpu.max only if its parent delegates the controller
    // through cgroup.subtree_control, and the parent can only do that if its
    // own parent did (cgroup.controllers).
    if (lists(parent / "cgroup.subtree_control", "cpu"))
        return;
    if (!lists(parent / "cgroup.controllers", "cpu"))
        throw CgroupError("the cpu controller is not available in " + parent.string() +
                          ": enable it in the parent's cgroup.subtree_control ('+cpu')");
    const int err = try_write_control(parent / "cgroup.subtree_control", "+cpu");
    if (err == 0)
        return;
    const char* hint = err == EBUSY ? "a cgroup v2 group that holds processes cannot delegate "
                                      "controllers (no internal processes): move them to a leaf"
                       : err == EINVAL
                           ? "the kernel refuses the cpu controller while real-time processes "
                             "run outside the root group (CONFIG_RT_GROUP_SCHED)"
                           : "";
    throw_cgroup_error("writing '+cpu' to", parent / "cgroup.subtree_control", err, hint);
}

fs::path CpuControllerV2::create_group(const fs::path& relative) {
    return make_path(relative, [this](const fs::path& parent) { enable_cpu_in_subtree(parent); });
}

void CpuControllerV2::move_pid(const fs::path& group, pid_t pid) {
    const auto dir = under_root(group);
    // Writing a PID to cgroup.procs moves all its threads, but only into a
    // domain group: a threaded group takes single threads (cgroup.threads)
    // within its threaded subtree, and "domain invalid" takes nothing.
    std::error_code ec;
    if (fs::exists(dir / "cgroup.type", ec)) {
        const auto type = first_line(read_control(dir / "cgroup.type"));
        if (type != "domain" && type != "domain threaded")
            throw CgroupError("cannot move process " + std::to_string(pid) + " into " +
                              dir.string() + ": its cgroup.type is '" + type +
                              "', and a whole process can only join a domain group; partlink's "
                              "groups must not be in a threaded subtree");
    }
    const int err = try_write_control(dir / "cgroup.procs", std::to_string(pid), WriteMode::append);
    if (err == 0)
        return;
    const char* hint = err == ESRCH ? "the process does not exist (did it exit?)"
                       : err == EBUSY
                           ? "the group delegates controllers to children (no internal processes): "
                             "processes belong in leaf groups"
                       : err == EOPNOTSUPP ? "the group or the process is in a threaded subtree"
                                           : "";
    throw_cgroup_error("moving process " + std::to_string(pid) + ": writing to",
                       dir / "cgroup.procs", err, hint);
}

void CpuControllerV2::set_cap(const fs::path& group, const CpuCap& cap) {
    if (cap.period_us < kMinPeriodUs || cap.period_us > kMaxPeriodUs)
        throw CgroupError("CPU period " + std::to_string(cap.period_us) +
                          " us is outside the kernel's 1000..1000000 us");
    const std::string quota = cap.quota_us ? std::to_string(*cap.quota_us) : "max";
    write_control(under_root(group) / "cpu.max", quota + " " + std::to_string(cap.period_us));
}

CpuCap CpuControllerV2::cap(const fs::path& group) const {
    const auto file = under_root(group) / "cpu.max";
    const auto words = split_words(read_control(file));
    if (words.size() != 2)
        throw CgroupError(file.string() + " does not read 'QUOTA PERIOD'");
    const auto period = parse_integer(words[1], file);
    if (period <= 0)
        throw CgroupError(file.string() + " has period " + words[1]);
    if (words[0] == "max")
        return CpuCap::unlimited(static_cast<std::uint64_t>(period));
    const auto quota = parse_integer(words[0], file);
    if (quota <= 0)
        throw CgroupError(file.string() + " has quota " + words[0]);
    return CpuCap{static_cast<std::uint64_t>(quota), static_cast<std::uint64_t>(period)};
}

void CpuControllerV2::set_weight(const fs::path& group, std::uint32_t weight) {
    if (weight < kMinWeight || weight > kMaxWeight)
        throw CgroupError("CPU weight " + std::to_string(weight) + " is outside 1..10000");
    write_control(under_root(group) / "cpu.weight", std::to_string(weight));
}

std::uint32_t CpuControllerV2::weight(const fs::path& group) const {
    const auto file = under_root(group) / "cpu.weight";
    const auto value = parse_integer(read_control(file), file);
    if (value < kMinWeight || value > kMaxWeight)
        throw CgroupError(file.string() + " holds " + std::to_string(value) + ", not 1..10000");
    return static_cast<std::uint32_t>(value);
}

CpuStat CpuControllerV2::stat(const fs::path& group) const {
    const auto values = parse_flat_keyed(read_control(under_root(group) / "cpu.stat"));
    const auto get = [&](const char* key) -> std::optional<std::uint64_t> {
        const auto it = values.find(key);
        if (it == values.end())
            return std::nullopt;
        return it->second;
    };
    CpuStat stat;
    stat.nr_periods = get("nr_periods").value_or(0);
    stat.nr_throttled = get("nr_throttled").value_or(0);
    stat.throttled = std::chrono::microseconds(get("throttled_usec").value_or(0));
    if (const auto usage = get("usage_usec"))
        stat.usage = std::chrono::microseconds(*usage);
    return stat;
}

fs::path CpuControllerV2::process_holder_above(const fs::path& group) const {
    // No internal processes: only the root, or a group that delegates no
    // controllers, may hold processes.
    for (auto dir = group.parent_path(); dir != root() && dir.has_relative_path();
         dir = dir.parent_path()) {
        if (split_words(read_control(dir / "cgroup.subtree_control")).empty())
            return dir;
    }
    return root();
}

void CpuControllerV2::remove_group(const fs::path& group) {
    const auto dir = under_root(group);
    refuse_if_has_children(dir);
    evacuate(dir, process_holder_above(dir), "cgroup.procs");
    dir_ops().remove(dir);
}

} // namespace partlink::capacity
