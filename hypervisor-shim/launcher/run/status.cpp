#include "run/status.hpp"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "cli/text_table.hpp"
#include "qemu/qemu_command.hpp"
#include "qemu/qemu_control.hpp"
#include "qmp.hpp"
#include "run/partlinkd_control.hpp"

namespace partlink {

namespace {

void collect_fabric(StatusReport& report, const RunState& state) {
    DaemonStatus d;
    if (state.partlinkd) {
        d.pid = state.partlinkd->pid;
        d.socket = state.partlinkd->socket;
        d.segment = state.partlinkd->segment;
        d.log = state.partlinkd->log;
    } else { // `up` had not got that far
        d.socket = report.run_dir / "partlinkd.sock";
        d.segment = report.run_dir / "fabric";
        d.log = report.run_dir / "partlinkd.log";
    }
    d.running = d.pid && is_our_partlinkd(*d.pid, report.run_dir);
    FabricSnapshot snap = read_fabric(d.segment);
    report.fabric_error = snap.error;
    for (auto& p : report.partitions) {
        int port = fabric_port(p.record.index);
        p.fabric = snap.ports && port >= 0 && port < PARTLINK_FABRIC_PORTS
                       ? (*snap.ports)[static_cast<std::size_t>(port)]
                       : PortStatus{};
    }
    report.partlinkd = d;
}

// A wedged QEMU must not hold `status` up for long.
constexpr std::chrono::milliseconds kBalloonQueryTimeout{500};

std::optional<std::uint64_t> balloon_mib(const std::filesystem::path& qmp) {
    try {
        const std::uint64_t bytes = QmpClient::connect(qmp, kBalloonQueryTimeout).query_balloon();
        return (bytes + (1u << 19)) >> 20;
    } catch (const std::exception&) {
        // No balloon device, or a QEMU too busy to answer: shown as unknown.
    }
    return std::nullopt;
}

std::string memory_text(const PartitionStatus& s, int boot_mib) {
    if (!s.memory_mib)
        return "-";
    if (*s.memory_mib == static_cast<std::uint64_t>(boot_mib))
        return std::to_string(boot_mib) + " MiB";
    return std::to_string(*s.memory_mib) + "/" + std::to_string(boot_mib) + " MiB";
}

std::string cpus_text(double cpus) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", cpus);
    return text;
}

std::string seconds_text(std::chrono::microseconds us) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f s", double(us.count()) / 1e6);
    return text;
}

std::string capacity_table(const StatusReport& report) {
    Table rows = {{"NAME", "ENTITLED", "CAP", "WEIGHT", "USAGE", "PERIODS", "THROTTLED",
                   "THROTTLED TIME", "S", "CHART", "CGROUP"}};
    bool any = false;
    for (const auto& s : report.partitions) {
        if (!s.capacity && !s.chart)
            continue;
        any = true;
        const std::string chart = s.chart ? chart_state_text(*s.chart) : "-";
        if (!s.capacity) { // a chart without cgroups
            rows.push_back({s.record.name, "-", "-", "-", "-", "-", "-", "-",
                            velocity_text(s.chart), chart, "(no cgroup)"});
            continue;
        }
        const CapacityStatus& c = *s.capacity;
        std::vector<std::string> row = {s.record.name, cpus_text(c.entitlement_cpus) + " CPU"};
        if (c.cap && c.stat) {
            row.push_back(c.cap->cpus() ? cpus_text(*c.cap->cpus()) + " CPU" : "unlimited");
            row.push_back(std::to_string(c.weight));
            row.push_back(c.stat->usage ? (c.stat->usage_approximate ? "~" : "") +
                                              seconds_text(*c.stat->usage)
                                        : "-");
            row.push_back(std::to_string(c.stat->nr_periods));
            row.push_back(std::to_string(c.stat->nr_throttled));
            row.push_back(seconds_text(c.stat->throttled));
        } else {
            for (int i = 0; i < 5; ++i)
                row.push_back("-");
            row.push_back(c.exists ? "-" : "(no group)");
        }
        row.push_back(velocity_text(s.chart));
        row.push_back(chart);
        row.push_back(c.group.string() + (c.error.empty() ? "" : " (" + c.error + ")"));
        rows.push_back(std::move(row));
    }
    return any ? render_table(rows) : "";
}

nlohmann::ordered_json capacity_json(const CapacityStatus& c) {
    using json = nlohmann::ordered_json;
    json doc = {{"cgroup", c.group.string()},
                {"exists", c.exists},
                {"entitlement_cpus", c.entitlement_cpus},
                {"min_cpus", c.min_cpus ? json(*c.min_cpus) : json(nullptr)},
                {"max_cpus", c.max_cpus ? json(*c.max_cpus) : json(nullptr)},
                {"weight", c.weight}};
    doc["cap_cpus"] = c.cap && c.cap->cpus() ? json(*c.cap->cpus()) : json(nullptr);
    doc["quota_us"] = c.cap && c.cap->quota_us ? json(*c.cap->quota_us) : json(nullptr);
    doc["period_us"] = c.cap ? json(c.cap->period_us) : json(nullptr);
    if (c.stat) {
        doc["usage_seconds"] =
            c.stat->usage ? json(double(c.stat->usage->count()) / 1e6) : json(nullptr);
        doc["usage_approximate"] = c.stat->usage_approximate;
        doc["nr_periods"] = c.stat->nr_periods;
        doc["nr_throttled"] = c.stat->nr_throttled;
        doc["throttled_seconds"] = double(c.stat->throttled.count()) / 1e6;
    } else {
        for (const char* key : {"usage_seconds", "usage_approximate", "nr_periods", "nr_throttled",
                                "throttled_seconds"})
            doc[key] = nullptr;
    }
    doc["error"] = c.error.empty() ? json(nullptr) : json(c.error);
    return doc;
}

std::string daemon_line(const DaemonStatus& d) {
    if (!d.pid)
        return "partlinkd: not started (see " + d.log.string() + ")";
    if (!d.running)
        return "partlinkd: not running (pid " + std::to_string(*d.pid) + " is gone; see " +
               d.log.string() + ")";
    return "partlinkd: running, pid " + std::to_string(*d.pid) + ", socket " + d.socket.string();
}

std::string fabric_table(const StatusReport& report) {
    // clang-format off
    Table rows = {{"NAME", "LINK", "PEERS", "TX PKTS", "TX BYTES", "RX PKTS", "RX BYTES",
                   "COPIES", "KICKS", "IRQS", "RX NO BUF", "TX NO BUF", "BAD DESC", "SPOOFED",
                   "NO ROUTE"}};
    // clang-format on
    for (const auto& s : report.partitions) {
        if (!s.fabric)
            continue;
        const PortStatus& f = *s.fabric;
        auto n = [&](int index) {
            return std::to_string(f.counter(index));
        };
        rows.push_back({s.record.name, f.link_up ? "up" : "down", std::to_string(f.peers),
                        n(PARTLINK_CTR_TX_PACKETS), n(PARTLINK_CTR_TX_BYTES),
                        n(PARTLINK_CTR_RX_PACKETS), n(PARTLINK_CTR_RX_BYTES),
                        n(PARTLINK_CTR_COPIES), n(PARTLINK_CTR_TX_KICKS),
                        n(PARTLINK_CTR_RX_INTERRUPTS), n(PARTLINK_CTR_RX_NO_BUFFER),
                        n(PARTLINK_CTR_TX_NO_BUFFER), n(PARTLINK_CTR_BAD_DESCRIPTORS),
                        n(PARTLINK_CTR_SPOOFED), n(PARTLINK_CTR_NO_ROUTE)});
    }
    return render_table(rows);
}

} // namespace

std::string live_state(const PartitionRecord& record, const std::filesystem::path& run_dir,
                       bool busy) {
    bool alive = record.qemu_pid && is_our_qemu(*record.qemu_pid, run_dir);
    // A partition is "starting" only while its `up` is still running; a
    // crashed `up` leaves QEMUs that are, as far as anyone can tell, running.
    if (busy && record.state == "starting" && (alive || !record.qemu_pid))
        return "starting";
    if (alive)
        return "running";
    // Stopped on purpose (`partlink stop`), or gone by itself (killed, crashed).
    return record.state == "stopped" ? "stopped" : "dead";
}

StatusReport collect_status(const std::filesystem::path& run_dir,
                            const std::optional<RunState>& state, bool busy) {
    StatusReport report;
    report.run_dir = run_dir;
    report.busy = busy;
    if (!state)
        return report;
    report.net = state->settings.net;
    report.boot_memory_mib = state->settings.mem_mib;
    CpuControllerPtr cgroups;
    if (state->cgroup_run)
        cgroups = find_cpu_cgroups();
    const LatestChart chart = latest_chart(run_dir / kWlmChartLog);
    for (const auto& p : state->partitions) {
        report.partitions.push_back({p, live_state(p, run_dir, busy), std::nullopt, std::nullopt,
                                     std::nullopt, std::nullopt});
        if (p.cgroup)
            report.partitions.back().capacity = capacity_status(*p.cgroup, cgroups.get());
        if (auto it = chart.find(p.name); it != chart.end())
            report.partitions.back().chart = it->second;
        if (report.partitions.back().live_state == "running")
            report.partitions.back().memory_mib = balloon_mib(p.qmp);
    }
    if (state->settings.net == NetMode::Partlink)
        collect_fabric(report, *state);
    return report;
}

std::string render_status_table(const StatusReport& report) {
    if (report.partitions.empty())
        return "partlink: nothing is up in " + report.run_dir.string() +
               (report.busy ? " (another partlink command is working on it)" : "") + "\n";
    Table rows = {{"NAME", "STATE", "IP", "SSH PORT", "QEMU PID", "ACCEL", "NET", "MEMORY"}};
    for (const auto& s : report.partitions) {
        const auto& p = s.record;
        rows.push_back({p.name, s.live_state, p.ip, std::to_string(p.ssh_port),
                        p.qemu_pid ? std::to_string(*p.qemu_pid) : "-",
                        std::string(to_string(p.accel)), std::string(to_string(p.net)),
                        memory_text(s, report.boot_memory_mib)});
    }
    std::string out = "run dir: " + report.run_dir.string() + "\n" + render_table(rows);
    std::string stubs;
    for (const auto& s : report.partitions)
        if (s.record.gdb_port)
            stubs += (stubs.empty() ? "" : ", ") + s.record.name +
                     " 127.0.0.1:" + std::to_string(*s.record.gdb_port);
    if (!stubs.empty())
        out += "gdbstubs: " + stubs + " (`partlink gdb vmN`)\n";
    if (report.partlinkd) {
        out += "\n" + daemon_line(*report.partlinkd) + "\n";
        if (!report.fabric_error.empty())
            out += "fabric: " + report.fabric_error + "\n";
        out += fabric_table(report);
    }
    if (std::string cap = capacity_table(report); !cap.empty())
        out += "\ncapacity (CPU cgroups; S and CHART: the WLM control chart's last point):\n" + cap;
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
            {"gdb_port", p.gdb_port ? json(*p.gdb_port) : json(nullptr)},
            {"net", to_string(p.net)},
            {"mac", p.mac},
            {"boot_memory_mib", report.boot_memory_mib},
            {"memory_mib", s.memory_mib ? json(*s.memory_mib) : json(nullptr)},
        });
        parts.back()["capacity"] = s.capacity ? capacity_json(*s.capacity) : json(nullptr);
        parts.back()["chart"] = s.chart ? json(chart_json(*s.chart)) : json(nullptr);
        if (s.fabric) {
            json counters = json::object();
            for (std::size_t i = 0; i < kCounterNames.size(); ++i)
                counters[kCounterNames[i]] = s.fabric->counters[i];
            json& part = parts.back();
            part["port"] = fabric_port(p.index);
            part["link"] = s.fabric->link_up ? "up" : "down";
            part["peers"] = s.fabric->peers;
            part["counters"] = std::move(counters);
        }
    }
    json doc = {{"run_dir", report.run_dir.string()},
                {"net", report.net ? json(to_string(*report.net)) : json(nullptr)}};
    if (report.partlinkd) {
        const DaemonStatus& d = *report.partlinkd;
        doc["partlinkd"] = {
            {"pid", d.pid ? json(*d.pid) : json(nullptr)},
            {"running", d.running},
            {"socket", d.socket.string()},
            {"segment", d.segment.string()},
            {"log", d.log.string()},
        };
        doc["fabric_error"] =
            report.fabric_error.empty() ? json(nullptr) : json(report.fabric_error);
    } else {
        doc["partlinkd"] = nullptr;
    }
    doc["partitions"] = std::move(parts);
    return doc;
}

} // namespace partlink
