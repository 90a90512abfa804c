// The CLI's commands, on top of the library pieces: each prints for a
// person and returns the process exit status (or throws partlink::Error).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "run/layout.hpp"
#include "run/options.hpp"

namespace partlink::cli {

int run_up(const UpOptions& options, const Layout& layout, const std::filesystem::path& run_dir);
int run_start(const StartOptions& options, const Layout& layout,
              const std::filesystem::path& run_dir);
int run_stop(const std::string& vm, const std::filesystem::path& run_dir);
int run_down(const std::filesystem::path& run_dir);
int run_status(const std::filesystem::path& run_dir, bool json);
// `segments`: the shared segments of the run; `segments load FILE`.
int run_segments(const std::filesystem::path& run_dir, bool json);
int run_segments_load(const std::filesystem::path& run_dir, const std::filesystem::path& file,
                      bool dry_run);
// `wlm log`: the capacity audit log as a table (or JSON lines).
int run_wlm_log(const std::filesystem::path& run_dir, bool json);
// `wlm chart`: runs the plotting script on the run's chart and audit logs.
int run_wlm_chart(const std::optional<std::string>& out, const Layout& layout,
                  const std::filesystem::path& run_dir);
// Only returns by throwing: on success this process becomes ssh.
int run_ssh(const std::string& vm, const std::vector<std::string>& command, const Layout& layout,
            const std::filesystem::path& run_dir);

// `run [up's options] -- CMD`: its exit status is CMD's.  `run_dir`: the
// user's --run-dir, if given (else a private one).
int run_one_shot_command(const UpOptions& options, const std::vector<std::string>& on,
                         const std::vector<std::string>& command, const Layout& layout,
                         const std::optional<std::string>& run_dir);
// `driver reload [vmN...] [--module FILE]`: 0 if every partition took it.
int run_driver_reload(const std::vector<std::string>& vms,
                      const std::optional<std::filesystem::path>& module, const Layout& layout,
                      const std::filesystem::path& run_dir);
int run_console(const std::string& vm, const std::filesystem::path& run_dir);
// The console and QEMU log of one partition.
int run_logs(const std::string& vm, const std::filesystem::path& run_dir);
// Only returns by throwing: on success this process becomes gdb.
int run_gdb(const std::string& vm, const std::vector<std::string>& gdb_args, const Layout& layout,
            const std::filesystem::path& run_dir);

} // namespace partlink::cli
