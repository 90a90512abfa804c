#include "run/state.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace partlink {

using nlohmann::json;

const PartitionRecord* RunState::find(std::string_view name) const {
    auto it = std::find_if(partitions.begin(), partitions.end(),
                           [&](const PartitionRecord& p) { return p.name == name; });
    return it == partitions.end() ? nullptr : &*it;
}

PartitionRecord* RunState::find(std::string_view name) {
    return const_cast<PartitionRecord*>(std::as_const(*this).find(name));
}

std::vector<std::string> RunState::names() const {
    std::vector<std::string> out;
    for (const auto& p : partitions)
        out.push_back(p.name);
    return out;
}

std::vector<std::string> RunState::interfaces() const {
    std::vector<std::string> out;
    for (const auto& p : partitions)
        out.insert(out.end(), p.taps.begin(), p.taps.end());
    if (bridge)
        out.push_back(*bridge);
    return out;
}

namespace {

nlohmann::ordered_json partition_to_json(const PartitionRecord& p) {
    using ojson = nlohmann::ordered_json;
    return ojson{
        {"name", p.name},
        {"index", p.index},
        {"state", p.state},
        {"ip", p.ip},
        {"mac", p.mac},
        {"mgmt_mac", p.mgmt_mac},
        {"partlink_mac", p.partlink_mac},
        {"qemu_pid", p.qemu_pid ? ojson(*p.qemu_pid) : ojson(nullptr)},
        {"ssh_port", p.ssh_port},
        {"accel", to_string(p.accel)},
        {"net", to_string(p.net)},
        {"console", p.console.string()},
        {"log", p.log.string()},
        {"qmp", p.qmp.string()},
        {"pidfile", p.pidfile.string()},
        {"taps", p.taps},
        {"cgroup", p.cgroup ? ojson{{"path", p.cgroup->path.string()},
                                    {"entitlement_units", p.cgroup->entitlement_units},
                                    {"weight", p.cgroup->weight},
                                    {"min_units", p.cgroup->min_units},
                                    {"max_units", p.cgroup->max_units}}
                            : ojson(nullptr)},
        {"gdb_port", p.gdb_port ? ojson(*p.gdb_port) : ojson(nullptr)},
    };
}

nlohmann::ordered_json boot_to_json(const BootRecord& b) {
    using ojson = nlohmann::ordered_json;
    ojson shares = ojson::array();
    for (const auto& sh : b.options.shares)
        shares.push_back({{"dir", sh.dir.string()}, {"tag", sh.tag}, {"writable", sh.writable}});
    ojson qemu_args = ojson::array();
    for (const auto& a : b.options.qemu_args)
        qemu_args.push_back({{"vm", a.vm}, {"words", a.words}});
    return ojson{
        {"kernel_given", b.options.kernel ? ojson(b.options.kernel->string()) : ojson(nullptr)},
        {"initrd_given", b.options.initrd ? ojson(b.options.initrd->string()) : ojson(nullptr)},
        {"append", b.options.append},
        {"shares", shares},
        {"gdb", b.options.gdb},
        {"qemu_args", qemu_args},
        {"kernel", b.kernel.string()},
        {"initrd", b.initrd.string()},
        {"release", b.release},
        {"kdir", b.kdir.string()},
        {"vmlinux", b.vmlinux.string()},
    };
}

nlohmann::ordered_json daemon_to_json(const std::optional<DaemonRecord>& d) {
    using ojson = nlohmann::ordered_json;
    if (!d)
        return nullptr;
    return ojson{
        {"pid", d->pid ? ojson(*d->pid) : ojson(nullptr)},
        {"socket", d->socket.string()},
        {"segment", d->segment.string()},
        {"config", d->config.string()},
        {"log", d->log.string()},
    };
}

// Field readers that name the offending field, e.g. "partitions[1].ssh_port".
class Reader {
public:
    Reader(const json& object, std::string where)
        : object_(object)
        , where_(std::move(where)) {
        if (!object_.is_object())
            fail(where_.empty() ? "the document is not a JSON object" : "is not an object");
    }

    bool has(const char* key) const { return object_.contains(key); }

    const json& field(const char* key) const {
        auto it = object_.find(key);
        if (it == object_.end())
            fail(std::string("missing field '") + key + "'");
        return *it;
    }

    std::string string(const char* key) const {
        const json& v = field(key);
        if (!v.is_string())
            fail("is not a string", key);
        return v.get<std::string>();
    }

    long long integer(const char* key, long long min, long long max) const {
        const json& v = field(key);
        if (!v.is_number_integer())
            fail("is not an integer", key);
        auto value = v.get<long long>();
        if (value < min || value > max)
            fail("is out of range (" + std::to_string(value) + ")", key);
        return value;
    }

    std::optional<long long> optional_integer(const char* key, long long min, long long max) const {
        if (field(key).is_null())
            return std::nullopt;
        return integer(key, min, max);
    }

    std::optional<std::string> optional_string(const char* key) const {
        if (field(key).is_null())
            return std::nullopt;
        return string(key);
    }

    Accel accel(const char* key) const {
        auto value = parse_accel(string(key));
        if (!value)
            fail("is not an accelerator", key);
        return *value;
    }

    NetMode net(const char* key) const {
        auto value = parse_net_mode(string(key));
        if (!value)
            fail("is not a network mode", key);
        return *value;
    }

    std::vector<std::string> strings(const char* key) const {
        const json& v = field(key);
        if (!v.is_array())
            fail("is not a list", key);
        std::vector<std::string> out;
        for (const auto& item : v) {
            if (!item.is_string())
                fail("has an element that is not a string", key);
            out.push_back(item.get<std::string>());
        }
        return out;
    }

    [[noreturn]] void fail(const std::string& what, const char* key = nullptr) const {
        std::string path = where_;
        if (key)
            path += (path.empty() ? "" : ".") + std::string(key);
        throw StateCorrupt(path.empty() ? what : "'" + path + "' " + what);
    }

private:
    const json& object_;
    std::string where_;
};

PartitionRecord partition_from_json(const json& doc, std::size_t i) {
    Reader r(doc, "partitions[" + std::to_string(i) + "]");
    PartitionRecord p;
    p.name = r.string("name");
    p.index = static_cast<int>(r.integer("index", kMinVms, kMaxVms));
    if (parse_vm_name(p.name) != p.index)
        r.fail("does not match its index " + std::to_string(p.index), "name");
    p.state = r.string("state");
    p.ip = r.string("ip");
    p.mac = r.string("mac");
    p.mgmt_mac = r.string("mgmt_mac");
    p.partlink_mac = r.string("partlink_mac");
    if (auto pid = r.optional_integer("qemu_pid", 1, 0x7fffffff))
        p.qemu_pid = static_cast<pid_t>(*pid);
    p.ssh_port = static_cast<int>(r.integer("ssh_port", 0, 65535));
    p.accel = r.accel("accel");
    p.net = r.net("net");
    p.console = r.string("console");
    p.log = r.string("log");
    p.qmp = r.string("qmp");
    p.pidfile = r.string("pidfile");
    p.taps = r.strings("taps");
    // Absent in documents of releases before cgroups.
    if (r.has("cgroup") && !r.field("cgroup").is_null()) {
        Reader c(r.field("cgroup"), "partitions[" + std::to_string(i) + "].cgroup");
        CgroupRecord cg;
        cg.path = c.string("path");
        cg.entitlement_units = c.integer("entitlement_units", 0, 1'000'000'000'000LL);
        cg.weight = static_cast<std::uint32_t>(c.integer("weight", 1, 10'000));
        // Absent in documents of releases before policy files.
        if (c.has("min_units"))
            cg.min_units = c.integer("min_units", 0, 1'000'000'000'000LL);
        if (c.has("max_units"))
            cg.max_units = c.integer("max_units", 0, 1'000'000'000'000LL);
        p.cgroup = std::move(cg);
    }
    // Absent in documents of releases before --gdb.
    if (r.has("gdb_port"))
        if (auto port = r.optional_integer("gdb_port", 1, 65535))
            p.gdb_port = static_cast<int>(*port);
    return p;
}

BootRecord boot_from_json(const Reader& r) {
    BootRecord b;
    if (!r.has("boot"))
        return b;
    Reader d(r.field("boot"), "boot");
    if (auto k = d.optional_string("kernel_given"))
        b.options.kernel = *k;
    if (auto i = d.optional_string("initrd_given"))
        b.options.initrd = *i;
    b.options.append = d.string("append");
    const json& shares = d.field("shares");
    if (!shares.is_array())
        d.fail("is not a list", "shares");
    for (std::size_t i = 0; i < shares.size(); ++i) {
        Reader sh(shares[i], "boot.shares[" + std::to_string(i) + "]");
        const json& writable = sh.field("writable");
        if (!writable.is_boolean())
            sh.fail("is not true or false", "writable");
        b.options.shares.push_back({sh.string("dir"), sh.string("tag"), writable.get<bool>()});
    }
    const json& gdb = d.field("gdb");
    if (!gdb.is_boolean())
        d.fail("is not true or false", "gdb");
    b.options.gdb = gdb.get<bool>();
    const json& args = d.field("qemu_args");
    if (!args.is_array())
        d.fail("is not a list", "qemu_args");
    for (std::size_t i = 0; i < args.size(); ++i) {
        Reader a(args[i], "boot.qemu_args[" + std::to_string(i) + "]");
        b.options.qemu_args.push_back(
            {static_cast<int>(a.integer("vm", 0, kMaxVms)), a.strings("words")});
    }
    b.kernel = d.string("kernel");
    b.initrd = d.string("initrd");
    b.release = d.string("release");
    b.kdir = d.string("kdir");
    b.vmlinux = d.string("vmlinux");
    return b;
}

std::optional<DaemonRecord> daemon_from_json(const Reader& r) {
    if (!r.has("partlinkd") || r.field("partlinkd").is_null())
        return std::nullopt;
    Reader d(r.field("partlinkd"), "partlinkd");
    DaemonRecord out;
    if (auto pid = d.optional_integer("pid", 1, 0x7fffffff))
        out.pid = static_cast<pid_t>(*pid);
    out.socket = d.string("socket");
    out.segment = d.string("segment");
    out.config = d.string("config");
    out.log = d.string("log");
    return out;
}

} // namespace

nlohmann::ordered_json state_to_json(const RunState& s) {
    using ojson = nlohmann::ordered_json;
    ojson partitions = ojson::array();
    for (const auto& p : s.partitions)
        partitions.push_back(partition_to_json(p));
    const RunSettings& st = s.settings;
    return ojson{
        {"version", s.version},
        {"run_dir", s.run_dir.string()},
        {"created", s.created},
        {"launcher_pid", s.launcher_pid},
        {"settings",
         {
             {"vms", st.vms},
             {"mem_mib", st.mem_mib},
             {"cpus", st.cpus},
             {"accel_requested", to_string(st.accel_requested)},
             {"accel", to_string(st.accel)},
             {"net", to_string(st.net)},
             {"ssh_port_base", st.ssh_port_base ? ojson(*st.ssh_port_base) : ojson(nullptr)},
             {"timeout_seconds", st.timeout_seconds},
         }},
        {"bridge", s.bridge ? ojson(*s.bridge) : ojson(nullptr)},
        {"partlinkd", daemon_to_json(s.partlinkd)},
        {"partitions", partitions},
        {"cgroup_run", s.cgroup_run ? ojson(s.cgroup_run->string()) : ojson(nullptr)},
        {"boot", boot_to_json(s.boot)},
    };
}

RunState state_from_json(const json& doc) {
    Reader r(doc, "");
    RunState s;
    s.version = static_cast<int>(r.integer("version", 0, 1'000'000));
    if (s.version != kStateVersion)
        throw StateCorrupt("version " + std::to_string(s.version) + " is not the supported " +
                           std::to_string(kStateVersion) +
                           " (written by another partlink release?)");
    s.run_dir = r.string("run_dir");
    s.created = r.string("created");
    s.launcher_pid = static_cast<pid_t>(r.integer("launcher_pid", 0, 0x7fffffff));

    Reader st(r.field("settings"), "settings");
    s.settings.vms = static_cast<int>(st.integer("vms", kMinVms, kMaxVms));
    s.settings.mem_mib = static_cast<int>(st.integer("mem_mib", kMinMemMib, kMaxMemMib));
    s.settings.cpus = static_cast<int>(st.integer("cpus", 1, 4096));
    s.settings.accel_requested = st.accel("accel_requested");
    s.settings.accel = st.accel("accel");
    s.settings.net = st.net("net");
    if (auto base = st.optional_integer("ssh_port_base", 1, 65535))
        s.settings.ssh_port_base = static_cast<int>(*base);
    s.settings.timeout_seconds =
        static_cast<int>(st.integer("timeout_seconds", 1, kMaxTimeoutSeconds));

    s.bridge = r.optional_string("bridge");
    s.partlinkd = daemon_from_json(r);
    if (r.has("cgroup_run"))
        if (auto run = r.optional_string("cgroup_run"))
            s.cgroup_run = *run;
    s.boot = boot_from_json(r);

    const json& parts = r.field("partitions");
    if (!parts.is_array())
        r.fail("is not a list", "partitions");
    for (std::size_t i = 0; i < parts.size(); ++i) {
        PartitionRecord p = partition_from_json(parts[i], i);
        if (s.find(p.name))
            throw StateCorrupt("partition '" + p.name + "' appears twice");
        s.partitions.push_back(std::move(p));
    }
    return s;
}

std::string serialize_state(const RunState& state) {
    return state_to_json(state).dump(2) + "\n";
}

RunState parse_state(std::string_view text) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        // nlohmann's message starts with "[json.exception.parse_error.101] ".
        std::string what = e.what();
        if (auto pos = what.find("] "); pos != std::string::npos)
            what = what.substr(pos + 2);
        throw StateCorrupt("not valid JSON: " + what);
    }
    return state_from_json(doc);
}

} // namespace partlink
