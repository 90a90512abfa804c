// Choosing between KVM and TCG.  Opening /dev/kvm is no proof that KVM
// works, so the probe boots guests under KVM, each with a timeout:
//
//  1. a 16-byte BIOS whose first instruction makes QEMU exit with status 3
//     (catches hosts where a KVM guest never runs at all);
//  2. the real guest kernel, until its serial console shows the banner
//     (catches hosts where a KVM guest runs, but so slowly that it never
//     gets anywhere: on some nested setups every guest write costs a
//     millisecond, and the kernel's decompressor takes minutes).
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli/output.hpp"
#include "run/options.hpp"

namespace partlink {

struct ProbeResult {
    bool booted = false;
    std::string detail; // "probe booted", "guest did not run within 3 s", ...
};

struct ProbeSetup {
    std::filesystem::path qemu;
    std::vector<std::filesystem::path> firmware_dirs;
    std::filesystem::path bios;                  // stage 1 image, written by the probe
    std::filesystem::path log;                   // QEMU's output
    std::chrono::milliseconds timeout{3000};     // per stage
    std::optional<std::filesystem::path> kernel; // stage 2 is skipped without it
    std::filesystem::path console;               // stage 2's serial console
};

// Stage 1 only.
ProbeResult run_bios_probe(const ProbeSetup& setup, Accel accel);
// Stage 2 only.
ProbeResult run_kernel_probe(const ProbeSetup& setup, Accel accel);
// Both stages, the second only if the first booted and a kernel is given.
ProbeResult run_accel_probe(const ProbeSetup& setup, Accel accel);

// Resolves --accel: tcg as is; kvm only if the probe boots (else throws);
// auto to kvm if it boots, else tcg.  Says what it chose and why.
Accel choose_accel(Accel requested, const ProbeSetup& setup, const Output& out);

} // namespace partlink
