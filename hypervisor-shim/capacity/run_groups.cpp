#include "run_groups.hpp"

#include <system_error>
#include <thread>

namespace partlink::capacity {

namespace fs = std::filesystem;

namespace {

bool is_dir(const fs::path& p) {
    std::error_code ec;
    return fs::is_directory(p, ec);
}

} // namespace

std::shared_ptr<CpuController> open_checked_cpu_controller() {
    auto controller = make_cpu_controller(detect_cpu_hierarchy());
    controller->check_access();
    return controller;
}

std::shared_ptr<CpuController> find_cpu_controller() {
    try {
        return make_cpu_controller(detect_cpu_hierarchy());
    } catch (const std::exception&) {
        return nullptr;
    }
}

fs::path run_group(const CpuController& controller, std::string_view run_id) {
    return controller.root() / kPartlinkGroup / run_id;
}

fs::path fresh_group(CpuController& controller, const fs::path& group) {
    if (is_dir(group))
        controller.remove_group(group);
    return controller.create_group(group.lexically_relative(controller.root()));
}

std::vector<std::string> remove_group_patiently(const fs::path& group, CpuController& controller,
                                                std::chrono::milliseconds grace) {
    // A QEMU just killed may still be exiting (unmapping its RAM), listed
    // in the group but past moving: give it a few seconds to be gone.
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (;;) {
        if (!is_dir(group))
            return {};
        try {
            controller.remove_group(group);
            return {};
        } catch (const std::exception& e) {
            if (std::chrono::steady_clock::now() >= deadline)
                return {e.what()};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::vector<fs::path> remove_run_groups(const std::set<fs::path>& run_groups,
                                        std::set<fs::path> groups, CpuController& controller,
                                        std::vector<std::string>& errors,
                                        std::chrono::milliseconds grace) {
    for (const auto& run : run_groups) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(run, ec))
            if (entry.is_directory(ec))
                groups.insert(entry.path());
    }
    std::vector<fs::path> removed;
    // Partitions first: a group with children cannot go.
    const std::set<fs::path>& partitions = groups;
    for (const auto* set : {&partitions, &run_groups}) {
        for (const auto& group : *set) {
            if (!is_dir(group))
                continue;
            auto failed = remove_group_patiently(group, controller, grace);
            if (failed.empty())
                removed.push_back(group);
            errors.insert(errors.end(), failed.begin(), failed.end());
        }
    }
    return removed;
}

GroupState read_group(const fs::path& group, const CpuController* controller) {
    GroupState s;
    s.exists = is_dir(group);
    if (!s.exists)
        return s;
    if (!controller) {
        s.error = "no CPU cgroup hierarchy found";
        return s;
    }
    try {
        s.cap = controller->cap(group);
        s.weight = controller->weight(group);
        s.stat = controller->stat(group);
    } catch (const std::exception& e) {
        s.error = e.what();
    }
    return s;
}

} // namespace partlink::capacity
