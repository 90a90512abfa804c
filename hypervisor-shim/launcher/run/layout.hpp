// Where the launcher finds QEMU, the guest images and the default run
// directory: relative to its own executable (BUILD/bin/partlink), so that a
// build tree works wherever it is, with environment overrides for each.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace partlink {

struct Layout {
    std::filesystem::path build_dir;       // BUILD
    std::filesystem::path qemu;            // BUILD/qemu/qemu-system-x86_64 or $PARTLINK_QEMU
    std::filesystem::path images;          // BUILD/images or $PARTLINK_IMAGES
    std::filesystem::path default_run_dir; // BUILD/run or $PARTLINK_RUN_DIR
    // The fabric daemon, next to this executable: BUILD/bin/partlinkd or $PARTLINK_PARTLINKD
    std::filesystem::path partlinkd;
    // `partlink wlm chart`'s plotting script, installed with the launcher:
    // BUILD/share/partlink/wlm_chart.py or $PARTLINK_WLM_CHART; and the
    // Python that runs it (Debian's, which has python3-matplotlib):
    // /usr/bin/python3 or $PARTLINK_PYTHON.
    std::filesystem::path wlm_chart_script;
    std::filesystem::path python;
    // The source tree this launcher was built from ($PARTLINK_SOURCE_DIR to
    // override): the developer loop runs its scripts (prepare-kernel.sh,
    // build-driver.sh), which build against guest-driver/kernel/.
    std::filesystem::path source_dir;
    std::filesystem::path script(const char* name) const { return source_dir / "scripts" / name; }

    // The uncompressed kernel: under TCG, decompressing vmlinuz costs ~5 s a boot.
    std::filesystem::path kernel() const { return images / "vmlinux"; }
    std::filesystem::path initrd() const { return images / "initramfs.cpio.gz"; }
    std::filesystem::path ssh_identity() const { return images / "ssh" / "id_ed25519"; }
    std::filesystem::path ssh_known_hosts() const { return images / "ssh" / "known_hosts"; }
    // The release of the image's own kernel ("6.1.0-57-amd64").
    std::filesystem::path kernel_release_file() const { return images / "kernel-release"; }
    // Images prepared from `up --kernel`: KERNELS/<release>/.
    std::filesystem::path kernels() const { return build_dir / "kernels"; }
    // `make driver`'s output: DRIVER/<release>/partlink.ko.
    std::filesystem::path driver_dir() const { return build_dir / "driver"; }
    // QEMU's -L search path: our build's firmware first, then Debian's.
    std::vector<std::filesystem::path> firmware_dirs() const;

    // Each throws an Error naming the missing file and the make target that
    // produces it.
    void require_qemu() const;
    void require_images() const;
    void require_ssh_files() const;
    void require_partlinkd() const;
    void require_wlm_chart() const;
};

using EnvLookup = std::function<std::optional<std::string>(const char*)>;

// From the executable's real path and the environment.
Layout layout_for_executable(const std::filesystem::path& exe, const EnvLookup& env);
// For this process: realpath of /proc/self/exe and the real environment.
Layout discover_layout();
std::optional<std::string> getenv_nonempty(const char* name);

// --run-dir, else $PARTLINK_RUN_DIR (already in the layout), else BUILD/run.
std::filesystem::path choose_run_dir(const std::optional<std::string>& option,
                                     const Layout& layout);

} // namespace partlink
