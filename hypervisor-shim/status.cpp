#include "status.hpp"

#include <algorithm>
#include <array>

#include <nlohmann/json.hpp>

#include "qemu_control.hpp"

namespace partlink {

std::string live_state(const PartitionRecord& record, const std::filesystem::path& run_dir,
                       bool busy) {
    bool alive = record.qemu_pid && is_our_qemu(*record.qemu_pid, run_dir);
    // A partition is "starting" only while its `up` is still running; a
    // crashed `up` leaves QEMUs that are, as far as anyone can tell, running.
    if (busy && record.state == "starting" && (alive || !record.qemu_pid))
        return "starting";
    return alive ? "running" : "dead";
}

StatusReport collect_status(const std::filesystem::path& run_dir,
                            const std::optional<RunState>& state, bool busy) {
    StatusReport report;
    report.run_dir = run_dir;
    report.busy = busy;
    if (state)
        for (const auto& p : state->partitions)
            report.partitions.push_back({p, live_state(p, run_dir, busy)});
    return report;
}

std::string render_status_table(const StatusReport& report) {
    if (report.partitions.empty())
        return "partlink: nothing is up in " + report.run_dir.string() +
               (report.busy ? " (another partlink command is working on it)" : "") + "\n";
    using Row = std::array<std::string, 7>;
    std::vector<Row> rows = {{"NAME", "STATE", "IP", "SSH PORT", "QEMU PID", "ACCEL", "NET"}};
    for (const auto& s : report.partitions) {
        const auto& p = s.record;
        rows.push_back({p.name, s.live_state, p.ip, std::to_string(p.ssh_port),
                        p.qemu_pid ? std::to_string(*p.qemu_pid) : "-",
                        std::string(to_string(p.accel)), std::string(to_string(p.net))});
    }
    std::array<std::size_t, 7> width{};
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    std::string out = "run dir: " + report.run_dir.string() + "\n";
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size())
                line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    if (report.busy)
        out += "(another partlink command is working on this run directory)\n";
    return out;
}

nlohmann::ordered_json render_status_json(const StatusReport& report) {
    using json = nlohmann::ordered_json;
    json parts = json::array();
    for (const auto& s : report.partitions) {
        const auto& p = s.record;
        parts.push_back({
            {"name", p.name},
            {"state", s.live_state},
            {"ip", p.ip},
            {"qemu_pid", p.qemu_pid ? json(*p.qemu_pid) : json(nullptr)},
            {"accel", to_string(p.accel)},
            {"ssh_port", p.ssh_port},
            {"net", to_string(p.net)},
            {"mac", p.mac},
        });
    }
    return json{{"run_dir", report.run_dir.string()}, {"partitions", parts}};
}

} // namespace partlink
