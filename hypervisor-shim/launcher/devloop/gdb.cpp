#include "devloop/gdb.hpp"

#include <iostream>
#include <sstream>

#include "devloop/kernel.hpp"
#include "error.hpp"
#include "host/process.hpp"
#include "run/run_dir.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path reloaded_module_record(const RunState& state, const PartitionRecord& p) {
    return state.run_dir / (p.name + ".module");
}

std::vector<fs::path> candidate_modules(const RunState& state, const PartitionRecord& p,
                                        const Layout& layout) {
    std::vector<fs::path> out;
    if (auto recorded = read_text_file(reloaded_module_record(state, p)))
        out.emplace_back(recorded->substr(0, recorded->find('\n')));
    if (!state.boot.release.empty())
        out.push_back(layout.driver_dir() / state.boot.release / "partlink.ko");
    out.push_back(state.boot.options.kernel ? state.boot.kernel.parent_path() / "partlink.ko"
                                            : layout.images / "partlink.ko");
    return out;
}

std::vector<std::string> build_gdb_argv(const RunState& state, const PartitionRecord& p,
                                        const std::optional<LoadedModule>& module,
                                        const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"gdb", "-q"};
    if (!state.boot.vmlinux.empty())
        argv.push_back(state.boot.vmlinux.string());
    argv.insert(argv.end(), {"-ex", "target remote 127.0.0.1:" + std::to_string(*p.gdb_port)});
    if (module)
        argv.insert(argv.end(), {"-ex", "add-symbol-file " + module->file.string() + " " +
                                            module->text_address});
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

namespace {

// Asks the guest what it runs and where, and finds the file that matches:
// symbols from another build would put every name at a wrong address.
std::optional<LoadedModule> loaded_module(const RunState& state, const PartitionRecord& p,
                                          const Layout& layout, const SshTarget& ssh) {
    CommandResult r = run_command(build_ssh_argv(ssh,
                                                 {"cat /sys/module/partlink/srcversion "
                                                  "/sys/module/partlink/sections/.text"},
                                                 false, 5),
                                  10s);
    std::istringstream lines(r.output);
    std::string srcversion, text;
    std::getline(lines, srcversion);
    std::getline(lines, text);
    if (!r.status.success() || !text.starts_with("0x")) {
        std::cerr << "partlink: cannot read partlink.ko's address in " << p.name
                  << "; its symbols are not loaded\n";
        return std::nullopt;
    }
    std::error_code ec;
    for (const auto& file : candidate_modules(state, p, layout))
        if (fs::is_regular_file(file, ec) && module_info(file, "srcversion") == srcversion)
            return LoadedModule{file, text};
    std::cerr << "partlink: no partlink.ko here matches what " << p.name << " runs (srcversion "
              << srcversion << "); its symbols are not loaded\n";
    return std::nullopt;
}

} // namespace

void exec_gdb(const RunState& state, const PartitionRecord& p, const Layout& layout,
              const SshTarget& ssh, const std::vector<std::string>& extra) {
    if (!p.gdb_port)
        throw Error(p.name + " has no gdbstub; boot with `partlink up --gdb`");
    if (state.boot.vmlinux.empty())
        std::cerr << "partlink: no vmlinux with symbols for " << state.boot.release
                  << " (install linux-image-" << state.boot.release
                  << "-dbg, or boot --kernel TREE); gdb sees addresses only\n";
    exec_program(build_gdb_argv(state, p, loaded_module(state, p, layout, ssh), extra),
                 "install gdb (apt-get install gdb)");
}

} // namespace partlink
