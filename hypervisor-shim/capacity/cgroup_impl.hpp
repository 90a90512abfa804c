// The two CpuController implementations (internal: use make_cpu_controller).
#pragma once

#include "cgroup.hpp"

namespace partlink::capacity {

class CpuControllerV1 final : public CpuController {
public:
    CpuControllerV1(std::filesystem::path root, ControllerOptions options)
        : CpuController(std::move(root), std::move(options)) {}

    CgroupVersion version() const override { return CgroupVersion::v1; }
    void check_access() override;
    std::filesystem::path create_group(const std::filesystem::path& relative) override;
    void move_pid(const std::filesystem::path& group, pid_t pid) override;
    void set_cap(const std::filesystem::path& group, const CpuCap& cap) override;
    CpuCap cap(const std::filesystem::path& group) const override;
    void set_weight(const std::filesystem::path& group, std::uint32_t weight) override;
    std::uint32_t weight(const std::filesystem::path& group) const override;
    CpuStat stat(const std::filesystem::path& group) const override;
    void remove_group(const std::filesystem::path& group) override;

private:
    std::optional<std::chrono::microseconds>
    usage_of_tasks(const std::filesystem::path& group) const;
};

class CpuControllerV2 final : public CpuController {
public:
    CpuControllerV2(std::filesystem::path root, ControllerOptions options)
        : CpuController(std::move(root), std::move(options)) {}

    CgroupVersion version() const override { return CgroupVersion::v2; }
    void check_access() override;
    std::filesystem::path create_group(const std::filesystem::path& relative) override;
    void move_pid(const std::filesystem::path& group, pid_t pid) override;
    void set_cap(const std::filesystem::path& group, const CpuCap& cap) override;
    CpuCap cap(const std::filesystem::path& group) const override;
    void set_weight(const std::filesystem::path& group, std::uint32_t weight) override;
    std::uint32_t weight(const std::filesystem::path& group) const override;
    CpuStat stat(const std::filesystem::path& group) const override;
    void remove_group(const std::filesystem::path& group) override;

private:
    void enable_cpu_in_subtree(const std::filesystem::path& parent);
    std::filesystem::path process_holder_above(const std::filesystem::path& group) const;
};

// Checks effective write access (as the kernel will for the write itself).
void require_writable(const std::filesystem::path& file);

} // namespace partlink::capacity
