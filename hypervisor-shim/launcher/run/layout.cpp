#include "run/layout.hpp"

#include <cstdlib>
#include <system_error>
#include <unistd.h>

#include "error.hpp"

#ifndef PARTLINK_SOURCE_ROOT
#error "the build defines PARTLINK_SOURCE_ROOT, the source tree's root"
#endif

namespace partlink {

namespace fs = std::filesystem;

std::vector<fs::path> Layout::firmware_dirs() const {
    return {qemu.parent_path() / "pc-bios", "/usr/share/seabios", "/usr/share/qemu"};
}

namespace {

void require_file(const fs::path& path, const std::string& what, const std::string& remedy) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        throw Error(what + " not found: " + path.string() + "; " + remedy);
}

} // namespace

void Layout::require_qemu() const {
    require_file(qemu, "QEMU", "run `make qemu` (or set PARTLINK_QEMU)");
    if (::access(qemu.c_str(), X_OK) != 0)
        throw Error("QEMU at " + qemu.string() + " is not executable; run `make qemu`");
}

void Layout::require_images() const {
    for (const fs::path& p : {kernel(), initrd()})
        require_file(p, "guest image", "run `make images` (or set PARTLINK_IMAGES)");
    require_ssh_files();
}

void Layout::require_partlinkd() const {
    const std::string remedy = "run `make shim` (or set PARTLINK_PARTLINKD), or use --net "
                               "virtio-tap";
    require_file(partlinkd, "partlinkd (the partlink fabric daemon)", remedy);
    if (::access(partlinkd.c_str(), X_OK) != 0)
        throw Error("partlinkd at " + partlinkd.string() + " is not executable; " + remedy);
}

void Layout::require_wlm_chart() const {
    require_file(wlm_chart_script, "the chart script",
                 "run `make shim` (or set PARTLINK_WLM_CHART to scripts/wlm_chart.py)");
    require_file(python, "Python", "run `make deps` (or set PARTLINK_PYTHON)");
}

void Layout::require_ssh_files() const {
    for (const fs::path& p : {ssh_identity(), ssh_known_hosts()})
        require_file(p, "guest ssh key file", "run `make images` (or set PARTLINK_IMAGES)");
}

Layout layout_for_executable(const fs::path& exe, const EnvLookup& env) {
    Layout l;
    l.build_dir = exe.parent_path().parent_path();
    auto qemu = env("PARTLINK_QEMU");
    l.qemu = qemu ? fs::absolute(*qemu) : l.build_dir / "qemu" / "qemu-system-x86_64";
    auto images = env("PARTLINK_IMAGES");
    l.images = images ? fs::absolute(*images) : l.build_dir / "images";
    auto run = env("PARTLINK_RUN_DIR");
    l.default_run_dir = run ? fs::absolute(*run) : l.build_dir / "run";
    auto partlinkd = env("PARTLINK_PARTLINKD");
    l.partlinkd = partlinkd ? fs::absolute(*partlinkd) : exe.parent_path() / "partlinkd";
    auto chart = env("PARTLINK_WLM_CHART");
    l.wlm_chart_script =
        chart ? fs::absolute(*chart) : l.build_dir / "share" / "partlink" / "wlm_chart.py";
    auto python = env("PARTLINK_PYTHON");
    l.python = python ? fs::absolute(*python) : fs::path("/usr/bin/python3");
    auto source = env("PARTLINK_SOURCE_DIR");
    l.source_dir = source ? fs::absolute(*source) : fs::path(PARTLINK_SOURCE_ROOT);
    return l;
}

std::optional<std::string> getenv_nonempty(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v)
        return std::nullopt;
    return std::string(v);
}

Layout discover_layout() {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec)
        throw Error("cannot find the partlink executable (/proc/self/exe): " + ec.message());
    return layout_for_executable(fs::weakly_canonical(exe), getenv_nonempty);
}

fs::path choose_run_dir(const std::optional<std::string>& option, const Layout& layout) {
    if (option) {
        if (option->empty())
            throw UsageError("--run-dir must not be empty");
        return fs::absolute(*option);
    }
    return layout.default_run_dir;
}

} // namespace partlink
