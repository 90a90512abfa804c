#include "devloop/kernel.hpp"

#include <sstream>

#include "error.hpp"
#include "host/process.hpp"
#include "run/run_dir.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A kernel build with a cold driver build takes a minute on TCG hosts; a
// prepared one is checked in a second.
constexpr auto kPrepareTimeout = 10min;

std::string first_line_of(const fs::path& file) {
    auto text = read_text_file(file);
    if (!text)
        return {};
    return text->substr(0, text->find('\n'));
}

// Debian's kernel with debug info, from its -dbg package, if installed.
fs::path debian_vmlinux(const std::string& release) {
    fs::path dbg = fs::path("/usr/lib/debug/boot") / ("vmlinux-" + release);
    std::error_code ec;
    return fs::is_regular_file(dbg, ec) ? dbg : fs::path();
}

BootRecord image_kernel(const Layout& layout) {
    BootRecord b;
    b.kernel = layout.kernel();
    b.initrd = layout.initrd();
    b.release = first_line_of(layout.kernel_release_file());
    if (b.release.empty())
        throw Error("cannot read " + layout.kernel_release_file().string() + "; run `make images`");
    b.kdir = fs::path("/usr/src") / ("linux-headers-" + b.release);
    b.vmlinux = debian_vmlinux(b.release);
    return b;
}

BootRecord prepared_kernel(const fs::path& kernel, const Layout& layout, const Output& out) {
    const fs::path script = layout.script("prepare-kernel.sh");
    std::error_code ec;
    if (!fs::is_regular_file(script, ec))
        throw Error("cannot find " + script.string() +
                    " to prepare --kernel; set PARTLINK_SOURCE_DIR to the partlink checkout");
    out.info("preparing kernel " + kernel.string() + " (modules, partlink.ko, initramfs)");
    // The script finds the base image under BUILD_DIR.
    ::setenv("BUILD_DIR", layout.build_dir.c_str(), 1);
    CommandResult r =
        run_command({script.string(), kernel.string(), layout.kernels().string()}, kPrepareTimeout);
    std::istringstream lines(r.output);
    std::string ready;
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("kernel: ready "))
            ready = line;
        else if (!line.empty())
            out.item(line);
    }
    if (!r.status.success() || ready.empty())
        throw Error("cannot boot --kernel " + kernel.string() + ": prepare-kernel.sh " +
                    r.status.describe() + " (its messages are above)");
    // "kernel: ready <release> <dir>"
    std::istringstream words(ready.substr(std::string("kernel: ready ").size()));
    BootRecord b;
    std::string dir;
    words >> b.release >> dir;
    const fs::path prepared(dir);
    b.kernel = prepared / "bzImage";
    b.initrd = prepared / "initramfs.cpio.gz";
    b.kdir = first_line_of(prepared / "kdir");
    b.vmlinux = first_line_of(prepared / "vmlinux-path");
    if (b.release.empty() || !fs::is_regular_file(b.kernel, ec) ||
        !fs::is_regular_file(b.initrd, ec))
        throw Error("prepare-kernel.sh said '" + ready + "' but left no bzImage and initramfs in " +
                    dir);
    out.item("kernel " + b.release + ": " + b.kernel.string());
    return b;
}

} // namespace

std::string module_info(const fs::path& module, const char* field) {
    CommandResult r = run_command({"modinfo", "-F", field, module.string()}, 10s);
    return r.status.success() ? r.output.substr(0, r.output.find('\n')) : std::string();
}

BootRecord resolve_boot(const BootOptions& options, const Layout& layout, const Output& out) {
    BootRecord b =
        options.kernel ? prepared_kernel(*options.kernel, layout, out) : image_kernel(layout);
    if (options.initrd)
        b.initrd = *options.initrd;
    b.options = options;
    return b;
}

} // namespace partlink
