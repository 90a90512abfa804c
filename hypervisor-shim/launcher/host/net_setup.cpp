#include "host/net_setup.hpp"

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "error.hpp"
#include "host/process.hpp"

namespace partlink {

namespace fs = std::filesystem;

std::string run_dir_hash(std::string_view path) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : path) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    // Fold the high bits in: FNV's low bits alone mix poorly.
    std::uint32_t folded = static_cast<std::uint32_t>((h >> 24) ^ h) & 0xffffff;
    char buf[8];
    std::snprintf(buf, sizeof buf, "%06x", folded);
    return buf;
}

IfNames IfNames::for_run_dir(const fs::path& run_dir) {
    return IfNames(run_dir_hash(run_dir.string()));
}

std::string IfNames::bridge() const {
    return "plbr" + hash_;
}
std::string IfNames::tap(int index) const {
    return "plt" + hash_ + "v" + std::to_string(index);
}

bool IfNames::is_ours(std::string_view ifname) const {
    if (ifname == bridge())
        return true;
    std::string prefix = "plt" + hash_ + "v";
    if (!ifname.starts_with(prefix) || ifname.size() == prefix.size())
        return false;
    for (char c : ifname.substr(prefix.size()))
        if (c < '0' || c > '9')
            return false;
    return true;
}

std::vector<std::string> list_interfaces() {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/sys/class/net", ec))
        out.push_back(entry.path().filename().string());
    return out;
}

bool interface_exists(const std::string& name) {
    std::error_code ec;
    return fs::exists(fs::path("/sys/class/net") / name, ec);
}

namespace {

void ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"ip"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = run_command(argv);
    if (r.status.success())
        return;
    std::string cmd;
    for (const auto& a : argv)
        cmd += (cmd.empty() ? "" : " ") + a;
    std::string output = r.output;
    while (!output.empty() && (output.back() == '\n' || output.back() == ' '))
        output.pop_back();
    std::string hint;
    if (output.find("Operation not permitted") != std::string::npos)
        hint = "; --net virtio-tap needs root (CAP_NET_ADMIN); try --net virtio-socket";
    throw Error("`" + cmd + "` failed (" + r.status.describe() + "): " + output + hint);
}

// Keeps the kernel from giving the interface an IPv6 link-local address:
// the host must not appear on the data network at all.
void disable_ipv6(const std::string& name) {
    std::ofstream f("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6");
    if (f)
        f << "1\n";
}

} // namespace

void create_bridge(const std::string& name) {
    ip({"link", "add", "name", name, "type", "bridge"});
    disable_ipv6(name);
    ip({"link", "set", "dev", name, "up"});
}

void create_tap(const std::string& name, const std::string& bridge) {
    ip({"tuntap", "add", "dev", name, "mode", "tap"});
    disable_ipv6(name);
    ip({"link", "set", "dev", name, "master", bridge, "up"});
}

bool delete_interface(const std::string& name) {
    if (!interface_exists(name))
        return false;
    ip({"link", "delete", "dev", name});
    return true;
}

} // namespace partlink
