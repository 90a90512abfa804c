#include "devloop/driver_reload.hpp"

#include <sstream>

#include "devloop/gdb.hpp"
#include "devloop/kernel.hpp"
#include "error.hpp"
#include "host/process.hpp"
#include "host/ssh.hpp"
#include "run/run_dir.hpp"

namespace partlink {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kReloadTimeout = 60s;

std::string modinfo(const fs::path& module, const char* field) {
    std::string value = module_info(module, field);
    if (value.empty())
        throw Error("modinfo cannot read the " + std::string(field) + " of " + module.string());
    return value;
}

// The script's last line: "reload: ok OLD NEW DETAIL..." or
// "reload: error WHAT".
ReloadResult parse_report(const std::string& vm, const CommandResult& r) {
    ReloadResult result;
    result.vm = vm;
    std::istringstream lines(r.output);
    std::string last;
    for (std::string line; std::getline(lines, line);)
        if (line.starts_with("reload: "))
            last = line.substr(8);
    std::istringstream words(last);
    std::string verdict;
    words >> verdict;
    if (verdict == "ok") {
        words >> result.old_srcversion >> result.new_srcversion;
        std::getline(words >> std::ws, result.detail);
        result.ok = r.status.success();
    } else if (verdict == "error") {
        std::getline(words >> std::ws, result.detail);
    } else {
        result.detail =
            "ssh " + r.status.describe() + (r.output.empty() ? "" : ": " + r.output.substr(0, 300));
    }
    return result;
}

} // namespace

std::string reload_script(std::uintmax_t module_size) {
    // Holders are found by their open fds and mappings of /dev/partlink*.
    // Each is stopped with SIGTERM (SIGKILL after 2 s) and started again
    // from its NUL-separated command line by xargs, output to a log.
    return "size=" + std::to_string(module_size) + R"SH(
fail() { echo "reload: error $*"; exit 1; }
new=/tmp/partlink.ko.new
head -c "$size" >"$new" || fail "cannot receive the module"
[ "$(wc -c <"$new")" -eq "$size" ] || fail "the module arrived truncated"
old=$(cat /sys/module/partlink/srcversion 2>/dev/null || echo none)
mtu=$(cat /sys/class/net/pl0/mtu 2>/dev/null || echo)
addrs=$(ip -o addr show dev pl0 2>/dev/null |
	awk '$3 == "inet" || ($3 == "inet6" && $4 !~ /^fe80/) { print $4 }')
holders=
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	if ls -l "$d/fd" 2>/dev/null | grep -q ' /dev/partlink' ||
		grep -q ' /dev/partlink' "$d/maps" 2>/dev/null; then
		cat "$d/cmdline" >"/tmp/partlink-holder.$pid" && holders="$holders $pid"
	fi
done
names=
for pid in $holders; do
	names="$names,$(tr '\0' ' ' <"/tmp/partlink-holder.$pid" | cut -d' ' -f1-2)"
	kill "$pid" 2>/dev/null
done
for pid in $holders; do
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 40 ]; do sleep 0.05; i=$((i + 1)); done
	kill -9 "$pid" 2>/dev/null
done
if [ -e /sys/module/partlink ]; then
	rmmod partlink || fail "rmmod partlink failed (still in use: $(cat /sys/module/partlink/refcnt))"
fi
out=$(insmod "$new" 2>&1) || fail "insmod: $out"
cp "$new" "/lib/modules/$(uname -r)/extra/partlink.ko" 2>/dev/null
i=0
while [ ! -e /sys/class/net/pl0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -e /sys/class/net/pl0 ] || fail "the new module created no pl0 (dmesg: $(dmesg | tail -n 3 | tr '\n' ' '))"
[ -n "$mtu" ] && { ip link set dev pl0 mtu "$mtu" || fail "cannot set pl0's MTU back to $mtu"; }
for a in $addrs; do ip addr add "$a" dev pl0 || fail "cannot give pl0 $a back"; done
ip link set dev pl0 up || fail "cannot bring pl0 up"
i=0
while [ "$(cat /sys/class/net/pl0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 200 ]; do
	sleep 0.05; i=$((i + 1))
done
carrier=$(cat /sys/class/net/pl0/carrier 2>/dev/null)
for pid in $holders; do
	(xargs -0 env <"/tmp/partlink-holder.$pid" >>/var/log/partlink-restarted.log 2>&1 &)
	rm -f "/tmp/partlink-holder.$pid"
done
rm -f "$new"
[ "$carrier" = 1 ] || fail "pl0 has no carrier 10 s after the reload"
echo "reload: ok $old $(cat /sys/module/partlink/srcversion) pl0 $(echo $addrs | tr ' ' ,) mtu $mtu carrier up${names:+; restarted ${names#,}}"
)SH";
}

std::vector<ReloadResult> reload_driver(const RunState& state, const Layout& layout,
                                        const std::vector<std::string>& vms, const fs::path& module,
                                        const Output& out) {
    std::error_code ec;
    if (!fs::is_regular_file(module, ec))
        throw Error("no module at " + module.string() + "; run `make driver` first");
    const std::string vermagic = modinfo(module, "vermagic");
    const std::string release = vermagic.substr(0, vermagic.find(' '));
    if (!state.boot.release.empty() && release != state.boot.release)
        throw Error(module.string() + " is built for " + release + ", the partitions run " +
                    state.boot.release + "; run `make driver` (it builds for the running kernel)");
    const std::uintmax_t size = fs::file_size(module);
    out.info("reloading " + module.string() + " (srcversion " + modinfo(module, "srcversion") +
             ") in " + std::to_string(vms.size()) + " partition" + (vms.size() == 1 ? "" : "s"));

    struct Running {
        std::string vm;
        Process ssh;
        fs::path log;
        Clock::time_point started;
    };
    std::vector<Running> running;
    const std::string script = reload_script(size);
    for (const auto& vm : vms) {
        const PartitionRecord* p = state.find(vm);
        SshTarget target{layout.ssh_identity(), layout.ssh_known_hosts(),
                         static_cast<std::uint16_t>(p->ssh_port)};
        SpawnOptions spawn;
        spawn.input_file = module;
        spawn.output_file = state.run_dir / (vm + ".reload.log");
        running.push_back({vm, Process::spawn(build_ssh_argv(target, {script}, false), spawn),
                           *spawn.output_file, Clock::now()});
    }
    std::vector<ReloadResult> results;
    for (auto& r : running) {
        auto status = r.ssh.wait_for(std::chrono::duration_cast<std::chrono::milliseconds>(
            kReloadTimeout - (Clock::now() - r.started)));
        CommandResult cr;
        if (status) {
            cr.status = *status;
            cr.output = read_text_file(r.log).value_or("");
        } else {
            r.ssh.terminate(1s);
            cr.output = "reload: error no answer within 60 s (log " + r.log.string() + ")";
        }
        ReloadResult result = parse_report(r.vm, cr);
        // `partlink gdb` loads the symbols of what the guest runs.
        if (result.ok)
            write_file_atomic(reloaded_module_record(state, *state.find(r.vm)),
                              module.string() + "\n");
        result.took =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - r.started);
        results.push_back(std::move(result));
    }
    return results;
}

} // namespace partlink
