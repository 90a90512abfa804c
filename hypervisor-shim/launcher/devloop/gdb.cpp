#include "devloop/gdb.hpp"

#include <iostream>

#include "error.hpp"
#include "host/process.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path built_module(const RunState& state, const Layout& layout) {
    std::error_code ec;
    fs::path fresh = layout.driver_dir() / state.boot.release / "partlink.ko";
    if (!state.boot.release.empty() && fs::is_regular_file(fresh, ec))
        return fresh;
    if (state.boot.options.kernel)
        return state.boot.kernel.parent_path() / "partlink.ko";
    return layout.images / "partlink.ko";
}

std::vector<std::string> build_gdb_argv(const RunState& state, const PartitionRecord& p,
                                        const Layout& layout,
                                        const std::optional<std::string>& module_text,
                                        const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"gdb", "-q"};
    if (!state.boot.vmlinux.empty())
        argv.push_back(state.boot.vmlinux.string());
    argv.insert(argv.end(), {"-ex", "target remote 127.0.0.1:" + std::to_string(*p.gdb_port)});
    if (module_text)
        argv.insert(argv.end(), {"-ex", "add-symbol-file " + built_module(state, layout).string() +
                                            " " + *module_text});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

void exec_gdb(const RunState& state, const PartitionRecord& p, const Layout& layout,
              const SshTarget& ssh, const std::vector<std::string>& extra) {
    if (!p.gdb_port)
        throw Error(p.name + " has no gdbstub; boot with `partlink up --gdb`");
    if (state.boot.vmlinux.empty())
        std::cerr << "partlink: no vmlinux with symbols for " << state.boot.release
                  << " (install linux-image-" << state.boot.release
                  << "-dbg, or boot --kernel TREE); gdb sees addresses only\n";
    // Where the guest loaded partlink.ko, so that its symbols line up.
    std::optional<std::string> text;
    CommandResult r = run_command(
        build_ssh_argv(ssh, {"cat /sys/module/partlink/sections/.text"}, false, 5), 10s);
    if (r.status.success() && r.output.starts_with("0x"))
        text = r.output.substr(0, r.output.find_first_of("\r\n"));
    else
        std::cerr << "partlink: cannot read partlink.ko's address in " << p.name
                  << "; its symbols are not loaded\n";
    exec_program(build_gdb_argv(state, p, layout, text, extra),
                 "install gdb (apt-get install gdb)");
}

} // namespace partlink
