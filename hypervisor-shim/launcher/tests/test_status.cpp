// `partlink status` of a --net partlink run: link, peers and counters read
// from a synthetic fabric segment file.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>
#include <stdlib.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "qemu/qemu_command.hpp"
#include "run/fabric_status.hpp"
#include "run/status.hpp"

using namespace partlink;
namespace fs = std::filesystem;

namespace {

// A fabric as partlinkd and the devices would leave it: vm1 and vm2 up in
// network 1, vm3 never registered, and port 9 (not ours) up in network 1,
// port 10 up in network 2.
std::unique_ptr<partlink_fabric> sample_fabric() {
    auto f = std::make_unique<partlink_fabric>();
    std::memset(f.get(), 0, sizeof *f);
    f->magic = PARTLINK_FABRIC_MAGIC;
    f->version = PARTLINK_FABRIC_VERSION;
    f->nr_ports = PARTLINK_FABRIC_PORTS;
    auto up = [&](int port, std::uint32_t network, const char* name) {
        auto& p = f->ports[port];
        p.state = PARTLINK_PORT_UP;
        p.network = network;
        p.epoch = 1;
        std::strncpy(p.name, name, sizeof p.name);
    };
    up(1, 1, "vm1");
    up(2, 1, "vm2");
    up(9, 1, "other");
    up(10, 2, "elsewhere");
    for (unsigned i = 0; i < PARTLINK_NR_COUNTERS; ++i) {
        f->ports[1].counters[i] = 100 + i;
        f->ports[2].counters[i] = 200 + i;
        f->ports[3].counters[i] = 0;
    }
    f->ports[1].counters[PARTLINK_CTR_TX_BYTES] = 12345678901ull;
    f->ports[3].counters[PARTLINK_CTR_RX_NO_BUFFER] = 7; // from an earlier life
    return f;
}

class StatusOfFabric : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "partlink-status-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        run_ = fs::canonical(tmpl);
    }
    void TearDown() override { fs::remove_all(run_); }

    void write_segment(const partlink_fabric& f) {
        std::ofstream out(run_ / "fabric", std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(&f), sizeof f);
    }

    RunState state(int vms, NetMode net = NetMode::Partlink) {
        RunState s;
        s.run_dir = run_;
        s.created = "2026-01-01T00:00:00Z";
        s.settings = {vms, 512, 1, Accel::Auto, Accel::Tcg, net, {}, 180};
        if (net == NetMode::Partlink)
            s.partlinkd = DaemonRecord{999999001, run_ / "partlinkd.sock", run_ / "fabric",
                                       run_ / "fabric.json", run_ / "partlinkd.log"};
        for (int i = 1; i <= vms; ++i) {
            PartitionRecord p;
            p.name = vm_name(i);
            p.index = i;
            p.state = "running";
            p.ip = guest_ip(i);
            p.mac = data_nic_mac(i, net);
            p.qemu_pid = 999999000 + i; // no such process
            p.ssh_port = 40000 + i;
            p.net = net;
            s.partitions.push_back(p);
        }
        return s;
    }

    fs::path run_;
};

} // namespace

TEST(FabricStatus, CounterNamesFollowTheAbi) {
    EXPECT_EQ(kCounterNames.size(), static_cast<std::size_t>(PARTLINK_NR_COUNTERS));
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_TX_PACKETS], "tx_packets");
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_RX_PACKETS], "rx_packets");
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_COPIES], "copies");
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_BYTES_COPIED], "bytes_copied");
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_BAD_DESCRIPTORS], "bad_descriptors");
    EXPECT_STREQ(kCounterNames[PARTLINK_CTR_RX_BAD_BUFFER], "rx_bad_buffer");
}

TEST(FabricStatus, LinkAndPeers) {
    auto f = sample_fabric();
    PortStatus vm1 = port_status(*f, 1);
    EXPECT_TRUE(vm1.link_up);
    EXPECT_EQ(vm1.peers, 2); // vm2 and port 9; not itself, not network 2
    EXPECT_EQ(vm1.counter(PARTLINK_CTR_COPIES), 104u);
    EXPECT_EQ(port_status(*f, 10).peers, 0);
    PortStatus vm3 = port_status(*f, 3);
    EXPECT_FALSE(vm3.link_up);
    EXPECT_EQ(vm3.peers, 0);
    EXPECT_EQ(vm3.counter(PARTLINK_CTR_RX_NO_BUFFER), 7u);
    EXPECT_FALSE(port_status(*f, PARTLINK_FABRIC_PORTS).link_up);
    EXPECT_FALSE(port_status(*f, -1).link_up);
}

TEST_F(StatusOfFabric, JsonCarriesCountersLinkAndPeers) {
    write_segment(*sample_fabric());
    StatusReport report = collect_status(run_, state(3), false);
    auto doc = render_status_json(report);
    EXPECT_EQ(doc["net"], "partlink");
    EXPECT_EQ(doc["partlinkd"]["pid"], 999999001);
    EXPECT_EQ(doc["partlinkd"]["running"], false);
    EXPECT_TRUE(doc["fabric_error"].is_null());
    const auto& parts = doc["partitions"];
    ASSERT_EQ(parts.size(), 3u);
    EXPECT_EQ(parts[0]["link"], "up");
    EXPECT_EQ(parts[0]["peers"], 2);
    EXPECT_EQ(parts[0]["port"], 1);
    EXPECT_EQ(parts[0]["mac"], "02:70:6c:00:00:01");
    EXPECT_EQ(parts[0]["counters"].size(), static_cast<std::size_t>(PARTLINK_NR_COUNTERS));
    EXPECT_EQ(parts[0]["counters"]["tx_packets"], 100u);
    EXPECT_EQ(parts[0]["counters"]["tx_bytes"], 12345678901ull);
    EXPECT_EQ(parts[1]["counters"]["rx_packets"], 202u);
    EXPECT_EQ(parts[1]["counters"]["copies"], 204u);
    EXPECT_EQ(parts[1]["counters"]["rx_bad_buffer"], 215u);
    for (const char* key :
         {"tx_packets", "rx_packets", "tx_bytes", "rx_bytes", "copies", "bytes_copied",
          "rx_no_buffer", "tx_no_buffer", "bad_descriptors", "spoofed", "no_route", "tx_kicks",
          "rx_interrupts", "link_changes", "tx_errors", "rx_bad_buffer"})
        EXPECT_TRUE(parts[2]["counters"].contains(key)) << key;
    EXPECT_EQ(parts[2]["link"], "down");
    EXPECT_EQ(parts[2]["peers"], 0);
    EXPECT_EQ(parts[2]["counters"]["rx_no_buffer"], 7u);
}

TEST_F(StatusOfFabric, TableShowsTheFabric) {
    write_segment(*sample_fabric());
    std::string table = render_status_table(collect_status(run_, state(2), false));
    EXPECT_NE(table.find("partlinkd: not running (pid 999999001 is gone"), std::string::npos)
        << table;
    for (const char* word : {"LINK", "PEERS", "TX PKTS", "RX BYTES", "COPIES", "KICKS", "IRQS",
                             "RX NO BUF", "TX NO BUF", "BAD DESC", "SPOOFED", "NO ROUTE"})
        EXPECT_NE(table.find(word), std::string::npos) << word << "\n" << table;
    // vm1: up, 2 peers, tx_packets 100, tx_bytes 12345678901, rx 102, rx_bytes 103, copies 104,
    // kicks 111, interrupts 112, rx_no_buffer 106, tx_no_buffer 107, bad 108, spoofed 109,
    // no_route 110.
    std::istringstream lines(table);
    std::string line;
    bool seen = false;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
        if (w.size() == 15 && w[0] == "vm1") {
            seen = true;
            EXPECT_EQ(w, (std::vector<std::string>{"vm1", "up", "2", "100", "12345678901", "102",
                                                   "103", "104", "111", "112", "106", "107", "108",
                                                   "109", "110"}));
        }
    }
    EXPECT_TRUE(seen) << table;
}

TEST_F(StatusOfFabric, MissingSegmentIsDownNotAnError) {
    StatusReport report = collect_status(run_, state(2), false);
    EXPECT_NE(report.fabric_error.find("no fabric segment"), std::string::npos)
        << report.fabric_error;
    auto doc = render_status_json(report);
    EXPECT_EQ(doc["partitions"][0]["link"], "down");
    EXPECT_EQ(doc["partitions"][0]["counters"]["tx_packets"], 0u);
    EXPECT_FALSE(doc["fabric_error"].is_null());
    EXPECT_NE(render_status_table(report).find("fabric: no fabric segment"), std::string::npos);
}

TEST_F(StatusOfFabric, BadSegmentIsReported) {
    auto f = sample_fabric();
    f->magic = 0;
    write_segment(*f);
    StatusReport report = collect_status(run_, state(2), false);
    EXPECT_NE(report.fabric_error.find("bad magic"), std::string::npos) << report.fabric_error;
    std::ofstream(run_ / "fabric", std::ios::trunc) << "short";
    report = collect_status(run_, state(2), false);
    EXPECT_NE(report.fabric_error.find("size"), std::string::npos) << report.fabric_error;
}

TEST_F(StatusOfFabric, VirtioModesHaveNoFabric) {
    write_segment(*sample_fabric());
    auto doc = render_status_json(collect_status(run_, state(2, NetMode::VirtioTap), false));
    EXPECT_EQ(doc["net"], "virtio-tap");
    EXPECT_TRUE(doc["partlinkd"].is_null());
    EXPECT_FALSE(doc["partitions"][0].contains("counters"));
    EXPECT_FALSE(doc["partitions"][0].contains("link"));
    std::string table =
        render_status_table(collect_status(run_, state(2, NetMode::VirtioTap), false));
    EXPECT_EQ(table.find("partlinkd"), std::string::npos) << table;
    EXPECT_EQ(table.find("COPIES"), std::string::npos) << table;
}

TEST_F(StatusOfFabric, NothingUp) {
    auto doc = render_status_json(collect_status(run_, std::nullopt, false));
    EXPECT_TRUE(doc["net"].is_null());
    EXPECT_TRUE(doc["partlinkd"].is_null());
    EXPECT_TRUE(doc["partitions"].empty());
}

// A partition whose QEMU is gone is "stopped" if `partlink stop` stopped it,
// "dead" if it went by itself (killed, crashed, a `start` that failed).
TEST_F(StatusOfFabric, StoppedAndDeadPartitions) {
    RunState s = state(3);
    s.partitions[1].state = "stopped";
    s.partitions[1].qemu_pid.reset();
    s.partitions[2].state = "failed";
    EXPECT_EQ(live_state(s.partitions[0], run_, false), "dead");
    EXPECT_EQ(live_state(s.partitions[1], run_, false), "stopped");
    EXPECT_EQ(live_state(s.partitions[1], run_, true), "stopped");
    EXPECT_EQ(live_state(s.partitions[2], run_, false), "dead");

    // A `start` under way: "starting" until the QEMU is gone.
    s.partitions[1].state = "starting";
    EXPECT_EQ(live_state(s.partitions[1], run_, true), "starting");
    EXPECT_EQ(live_state(s.partitions[1], run_, false), "dead");

    auto doc = render_status_json(collect_status(run_, s, false));
    EXPECT_EQ(doc["partitions"][1]["state"], "dead");
    EXPECT_TRUE(doc["partitions"][1]["qemu_pid"].is_null());
    s.partitions[1].state = "stopped";
    std::string table = render_status_table(collect_status(run_, s, false));
    EXPECT_NE(table.find("vm2   stopped"), std::string::npos) << table;
}

namespace {

std::string chart_line(int second, const char* partition, const char* velocity, const char* state) {
    char line[512];
    std::snprintf(line, sizeof line,
                  R"({"time":"2026-11-25T09:%02d:%02d.000000Z","from":"vm1","partition":"%s",)"
                  R"("velocity":%s,"trend":1.0,"ewma":1.05,"lower_limit":0.8,)"
                  R"("upper_limit":1.3,"cpu":0.43,"state":"%s"})"
                  "\n",
                  second / 60 % 60, second % 60, partition, velocity, state);
    return line;
}

} // namespace

// S and the chart state come from the last line of each partition in the
// tail of RUN/wlm-chart.jsonl, which grows for as long as the run does.
TEST_F(StatusOfFabric, LastChartPointOfEachPartitionFromTheTail) {
    {
        std::ofstream out(run_ / "wlm-chart.jsonl", std::ios::binary);
        out << chart_line(0, "vm3", "0.5", "in-control"); // long before the tail
        for (int i = 0; i < 1500; ++i) {                  // about 300 KiB
            out << chart_line(i, "vm1", "1.1", "in-control");
            out << chart_line(i, "vm2", "0.9", "warming-up");
        }
        out << chart_line(1500, "vm1", "0.61", "low");
        out << chart_line(1500, "vm2", "null", "in-control");
        out << R"({"time":"2026-11-25T10:00:00Z","from":"vm1","partition":"vm1","velo)"; // torn
    }
    ASSERT_GT(fs::file_size(run_ / "wlm-chart.jsonl"), 4 * 64 * 1024u);
    const StatusReport report = collect_status(run_, state(3), false);
    ASSERT_TRUE(report.partitions[0].chart && report.partitions[1].chart);
    EXPECT_DOUBLE_EQ(*report.partitions[0].chart->velocity, 0.61);
    EXPECT_EQ(report.partitions[0].chart->state, capacity::ChartState::low);
    EXPECT_FALSE(report.partitions[1].chart->velocity);
    EXPECT_EQ(report.partitions[1].chart->state, capacity::ChartState::in_control);
    EXPECT_FALSE(report.partitions[2].chart) << "only the tail is read";

    const std::string table = render_status_table(report);
    std::istringstream lines(table);
    std::string line;
    std::map<std::string, std::vector<std::string>> rows;
    bool header = false;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
        if (!w.empty() && w[0] == "NAME" && line.find("CHART") != std::string::npos) {
            header = true;
            EXPECT_NE(line.find("  S  "), std::string::npos) << line;
        } else if (header && !w.empty()) {
            rows[w[0]] = w;
        }
    }
    ASSERT_TRUE(header) << table;
    ASSERT_TRUE(rows.count("vm1") && rows.count("vm2")) << table;
    EXPECT_FALSE(rows.count("vm3")) << table;
    // No cgroups in this run: the cgroup columns are "-".
    const auto& vm1 = rows["vm1"];
    EXPECT_EQ(vm1[vm1.size() - 4], "0.61") << table;
    EXPECT_EQ(vm1[vm1.size() - 3], "low") << table;
    const auto& vm2 = rows["vm2"];
    EXPECT_EQ(vm2[vm2.size() - 4], "-") << table;
    EXPECT_EQ(vm2[vm2.size() - 3], "in-control") << table;

    const auto doc = render_status_json(report);
    const auto& chart = doc["partitions"][0]["chart"];
    EXPECT_EQ(chart["state"], "low");
    EXPECT_DOUBLE_EQ(chart["velocity"].get<double>(), 0.61);
    EXPECT_EQ(chart["partition"], "vm1");
    EXPECT_TRUE(doc["partitions"][1]["chart"]["velocity"].is_null());
    EXPECT_TRUE(doc["partitions"][2]["chart"].is_null());
}

TEST_F(StatusOfFabric, NoChartLogNoChartColumns) {
    const StatusReport report = collect_status(run_, state(2), false);
    EXPECT_FALSE(report.partitions[0].chart);
    EXPECT_EQ(render_status_table(report).find("CHART"), std::string::npos);
    EXPECT_TRUE(render_status_json(report)["partitions"][0]["chart"].is_null());
}

// MEMORY: the guest's RAM as its balloon leaves it, out of what it booted
// with; unknown ("-") unless its QEMU answered.
TEST_F(StatusOfFabric, MemoryIsWhatTheBalloonLeaves) {
    StatusReport report = collect_status(run_, state(3), false);
    EXPECT_EQ(report.boot_memory_mib, 512);
    for (const auto& p : report.partitions)
        EXPECT_FALSE(p.memory_mib) << "not running: QEMU was not asked";
    report.partitions[0].memory_mib = 512;
    report.partitions[1].memory_mib = 384;
    const std::string table = render_status_table(report);
    EXPECT_NE(table.find("MEMORY"), std::string::npos) << table;
    EXPECT_NE(table.find(" 384/512 MiB"), std::string::npos) << table;
    EXPECT_NE(table.find(" 512 MiB"), std::string::npos) << table;
    const auto doc = render_status_json(report);
    EXPECT_EQ(doc["partitions"][1]["memory_mib"], 384);
    EXPECT_EQ(doc["partitions"][1]["boot_memory_mib"], 512);
    EXPECT_TRUE(doc["partitions"][2]["memory_mib"].is_null());
}
