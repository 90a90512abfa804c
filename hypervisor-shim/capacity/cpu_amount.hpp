// An amount of CPU capacity, in whole units of 1e-5 CPU.
//
// One unit is one microsecond of CPU time per 100 ms period, which is exactly
// a cgroup quota at the default period.  Integers, not doubles, so that a
// capacity shift keeps the pool total exactly constant however many
// directives are applied.
#pragma once

#include <cmath>
#include <compare>
#include <cstdint>

namespace partlink::capacity {

struct CpuAmount {
    static constexpr std::int64_t kUnitsPerCpu = 100'000;

    std::int64_t units = 0;

    // Rounds to the nearest unit; `cpus` must be finite and of a sane size
    // (callers validate before converting).
    static CpuAmount from_cpus(double cpus) {
        return CpuAmount{static_cast<std::int64_t>(std::llround(cpus * double(kUnitsPerCpu)))};
    }
    double cpus() const { return double(units) / double(kUnitsPerCpu); }

    auto operator<=>(const CpuAmount&) const = default;
    CpuAmount operator+(CpuAmount other) const { return {units + other.units}; }
    CpuAmount operator-(CpuAmount other) const { return {units - other.units}; }
    CpuAmount& operator+=(CpuAmount other) {
        units += other.units;
        return *this;
    }
    CpuAmount& operator-=(CpuAmount other) {
        units -= other.units;
        return *this;
    }
};

} // namespace partlink::capacity
