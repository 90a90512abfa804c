#include "run/teardown.hpp"

#include <algorithm>
#include <set>
#include <system_error>

#include "host/net_setup.hpp"
#include "qemu/qemu_control.hpp"
#include "run/capacity_setup.hpp"
#include "run/partlinkd_control.hpp"

namespace partlink {

namespace fs = std::filesystem;

namespace {

std::optional<RunState> load_state_or_warn(const RunDir& dir, const Output& out) {
    try {
        return dir.load_state();
    } catch (const StateCorrupt& e) {
        out.warn(dir.state_file().string() + " is corrupt (" + e.reason() +
                 "); falling back to pidfiles, processes and interface names");
        return std::nullopt;
    }
}

std::vector<std::string> our_interfaces(const RunDir& dir, const std::optional<RunState>& state) {
    IfNames names = IfNames::for_run_dir(dir.path());
    std::set<std::string> seen;
    std::vector<std::string> taps;
    std::vector<std::string> bridges;
    auto add = [&](const std::string& name) {
        if (!seen.insert(name).second || !interface_exists(name))
            return;
        (name.starts_with("plbr") ? bridges : taps).push_back(name);
    };
    if (state)
        for (const auto& name : state->interfaces())
            add(name);
    for (const auto& name : list_interfaces())
        if (names.is_ours(name))
            add(name);
    std::sort(taps.begin(), taps.end());
    // Taps first: a bridge goes once its ports are gone.
    taps.insert(taps.end(), bridges.begin(), bridges.end());
    return taps;
}

// Everything `up` creates except logs, consoles and fabric.json, which are
// kept for post-mortems.  The fabric segment outlives a restarted partlinkd,
// but not `down`.
std::vector<fs::path> runtime_files(const RunDir& dir) {
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir.path(), ec)) {
        const fs::path& p = entry.path();
        std::string name = p.filename().string();
        std::string ext = p.extension().string();
        bool vm_file = parse_vm_name(p.stem().string()).has_value();
        if ((vm_file && (ext == ".pid" || ext == ".qmp")) || name == "data.sock" ||
            name == "probe.bin" || name == "partlinkd.sock" || name == "fabric" ||
            name.starts_with("state.json.tmp."))
            out.push_back(p);
    }
    return out;
}

} // namespace

Leftovers find_leftovers(const RunDir& dir) {
    Leftovers l;
    std::error_code ec;
    l.state_file = fs::exists(dir.state_file(), ec);
    std::optional<RunState> state;
    try {
        state = dir.load_state();
    } catch (const StateCorrupt&) {
    }
    for (const auto& q : find_our_qemus(dir, state))
        l.live_qemus.push_back(q.name);
    l.live_daemons = find_our_partlinkds(dir, state);
    l.interfaces = our_interfaces(dir, state);
    l.pid_files = dir.pid_file_indices();
    if (auto cgroups = find_cpu_cgroups())
        l.cgroups = fs::is_directory(cgroup_run_group(*cgroups, dir.path()), ec);
    return l;
}

TeardownReport tear_down(const RunDir& dir, const Output& out) {
    TeardownReport report;
    std::optional<RunState> state = load_state_or_warn(dir, out);

    for (const auto& r : stop_qemus(find_our_qemus(dir, state), dir.path())) {
        std::string who = r.qemu.name + ": QEMU pid " + std::to_string(r.qemu.pid);
        if (r.how == "already gone")
            continue;
        if (r.stopped) {
            ++report.qemus_stopped;
            out.item(who + " stopped (" + r.how + ")");
        } else {
            report.errors.push_back(who + " " + r.how);
            out.warn(who + " " + r.how);
        }
    }

    // After the QEMUs, its clients.
    for (const auto& r : stop_partlinkds(find_our_partlinkds(dir, state), dir.path())) {
        std::string who = "partlinkd pid " + std::to_string(r.pid);
        if (r.how == "already gone")
            continue;
        if (r.stopped) {
            ++report.daemons_stopped;
            out.item(who + " stopped (" + r.how + ")");
        } else {
            report.errors.push_back(who + " " + r.how);
            out.warn(who + " " + r.how);
        }
    }

    std::vector<std::string> removed;
    for (const auto& name : our_interfaces(dir, state)) {
        try {
            if (delete_interface(name))
                removed.push_back(name);
        } catch (const Error& e) {
            report.errors.push_back(e.what());
            out.warn(e.what());
        }
    }
    if (!removed.empty()) {
        report.interfaces_removed = static_cast<int>(removed.size());
        std::string list;
        for (const auto& n : removed)
            list += (list.empty() ? "" : ", ") + n;
        out.item("removed interfaces " + list);
    }

    // The QEMUs are gone: their CPU cgroups can go (found from the state and
    // by scanning <cpu root>/partlink/<run-id>, so also after a killed launcher).
    if (auto cgroups = find_cpu_cgroups()) {
        std::vector<std::string> errors;
        auto gone = remove_run_cgroups(dir.path(), state, *cgroups, errors);
        report.cgroups_removed = static_cast<int>(gone.size());
        if (!gone.empty()) {
            std::string list;
            for (const auto& g : gone)
                list += (list.empty() ? "" : ", ") + g.string();
            out.item("removed cgroups " + list);
        }
        for (const auto& e : errors) {
            report.errors.push_back(e);
            out.warn(e);
        }
    }

    std::error_code ec;
    if (fs::remove(dir.state_file(), ec))
        report.state_removed = true;
    else if (ec)
        report.errors.push_back("cannot remove " + dir.state_file().string() + ": " + ec.message());
    for (const auto& p : runtime_files(dir)) {
        if (!fs::remove(p, ec) && ec)
            report.errors.push_back("cannot remove " + p.string() + ": " + ec.message());
    }
    return report;
}

} // namespace partlink
