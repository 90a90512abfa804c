#include "proc_stats.hpp"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

namespace plwlm {
namespace {

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos)
        return {};
    const auto last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        lines.push_back(text.substr(0, nl));
        if (nl == std::string_view::npos)
            break;
        text.remove_prefix(nl + 1);
    }
    return lines;
}

std::vector<std::string_view> split_fields(std::string_view s) {
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
            ++i;
        const auto start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t')
            ++i;
        if (i > start)
            fields.push_back(s.substr(start, i - start));
    }
    return fields;
}

std::uint64_t parse_counter(std::string_view field, std::string_view file, std::size_t line_no) {
    std::uint64_t value = 0;
    const auto* end = field.data() + field.size();
    const auto [ptr, ec] = std::from_chars(field.data(), end, value);
    if (ec != std::errc{} || ptr != end)
        throw ProcParseError(std::string(file) + " line " + std::to_string(line_no) + ": '" +
                             std::string(field) + "' is not an unsigned counter");
    return value;
}

// A counter that went backwards (iowait does, on NO_HZ kernels) contributes
// nothing instead of wrapping around to a huge delta.
std::uint64_t forward_delta(std::uint64_t before, std::uint64_t after) {
    return after >= before ? after - before : 0;
}

} // namespace

NetCounters parse_net_dev(std::string_view text, std::string_view iface) {
    constexpr std::string_view kFile = "/proc/net/dev";
    // Per interface: 8 receive columns, then 8 transmit columns.
    constexpr std::size_t kColumns = 16;
    constexpr std::size_t kRxPackets = 1;
    constexpr std::size_t kTxPackets = 9;

    NetCounters total;
    bool found = false;
    bool saw_header = false;
    std::string names;
    const auto lines = split_lines(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto line = lines[i];
        if (trim(line).empty())
            continue;
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) {
            // The two header lines are the only ones without a colon; they
            // use '|' to group the columns.
            if (line.find('|') == std::string_view::npos)
                throw ProcParseError(std::string(kFile) + " line " + std::to_string(i + 1) +
                                     ": expected 'interface: counters' or a header, got '" +
                                     std::string(trim(line)) + "'");
            saw_header = true;
            continue;
        }
        const auto name = trim(line.substr(0, colon));
        if (name.empty())
            throw ProcParseError(std::string(kFile) + " line " + std::to_string(i + 1) +
                                 ": interface name is empty");
        // Old kernels glue large counters to the colon ("eth0:123"), so the
        // split is on the colon, not on whitespace.
        const auto fields = split_fields(line.substr(colon + 1));
        if (fields.size() != kColumns)
            throw ProcParseError(std::string(kFile) + " line " + std::to_string(i + 1) +
                                 ": interface " + std::string(name) + " has " +
                                 std::to_string(fields.size()) + " counters, expected " +
                                 std::to_string(kColumns));
        const auto rx = parse_counter(fields[kRxPackets], kFile, i + 1);
        const auto tx = parse_counter(fields[kTxPackets], kFile, i + 1);
        names += (names.empty() ? "" : ", ") + std::string(name);
        const bool wanted = iface.empty() ? name != "lo" : name == iface;
        if (wanted) {
            total.rx_packets += rx;
            total.tx_packets += tx;
            found = true;
        }
    }
    if (!saw_header)
        throw ProcParseError(std::string(kFile) +
                             ": header missing; is this really /proc/net/dev?");
    if (!iface.empty() && !found)
        throw ProcParseError("interface " + std::string(iface) + " is not in " +
                             std::string(kFile) + " (there: " + names +
                             "); pass --iface with one of those, or leave it out for all but lo");
    return total;
}

CpuTimes parse_proc_stat(std::string_view text) {
    constexpr std::string_view kFile = "/proc/stat";
    const auto lines = split_lines(text);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto fields = split_fields(lines[i]);
        if (fields.empty() || fields[0] != "cpu")
            continue;
        // user nice system idle iowait irq softirq steal: every kernel since
        // 2.6.11 has them (and guest, guest_nice after).
        constexpr std::size_t kNeeded = 8;
        if (fields.size() < kNeeded + 1)
            throw ProcParseError(std::string(kFile) + " line " + std::to_string(i + 1) +
                                 ": the cpu line has " + std::to_string(fields.size() - 1) +
                                 " counters, expected at least " + std::to_string(kNeeded));
        std::array<std::uint64_t, kNeeded> v{};
        for (std::size_t k = 0; k < kNeeded; ++k)
            v[k] = parse_counter(fields[k + 1], kFile, i + 1);
        return CpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
    }
    throw ProcParseError(std::string(kFile) +
                         ": no aggregate 'cpu' line; is this really /proc/stat?");
}

std::optional<CpuUsage> cpu_usage(const CpuTimes& before, const CpuTimes& after) {
    const auto running =
        forward_delta(before.user, after.user) + forward_delta(before.nice, after.nice) +
        forward_delta(before.system, after.system) + forward_delta(before.irq, after.irq) +
        forward_delta(before.softirq, after.softirq);
    const auto idle =
        forward_delta(before.idle, after.idle) + forward_delta(before.iowait, after.iowait);
    const auto steal = forward_delta(before.steal, after.steal);
    const auto total = running + idle + steal;
    if (total == 0)
        return std::nullopt;
    const auto t = static_cast<double>(total);
    return CpuUsage{static_cast<double>(running) / t, static_cast<double>(steal) / t};
}

std::optional<std::uint64_t> packets_between(const NetCounters& before, const NetCounters& after) {
    if (after.rx_packets < before.rx_packets || after.tx_packets < before.tx_packets)
        return std::nullopt;
    return (after.rx_packets - before.rx_packets) + (after.tx_packets - before.tx_packets);
}

std::string read_proc_file(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno) +
                                 " (is /proc mounted? mount -t proc proc /proc)");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace plwlm
