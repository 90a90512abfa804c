#include <filesystem>
#include <fstream>
#include <stdlib.h>

#include <gtest/gtest.h>

#include "error.hpp"
#include "run/options.hpp"

using namespace partlink;

namespace {

std::string usage_error(const UpArgs& args, int cpus = 4) {
    try {
        validate_up_args(args, cpus);
    } catch (const UsageError& e) {
        EXPECT_EQ(e.exit_code(), kExitUsage);
        return e.what();
    }
    return "(no error)";
}

} // namespace

TEST(UpOptions, DefaultsAreTheDocumentedOnes) {
    UpOptions o = validate_up_args(UpArgs{}, 2);
    EXPECT_EQ(o.vms, 2);
    EXPECT_EQ(o.mem_mib, 512);
    EXPECT_EQ(o.cpus, 1);
    EXPECT_EQ(o.accel, Accel::Auto);
    EXPECT_EQ(o.net, NetMode::Partlink);
    EXPECT_FALSE(o.fabric_config);
    EXPECT_FALSE(o.ssh_port_base);
    EXPECT_EQ(o.timeout.count(), 180);
}

TEST(UpOptions, VmsOutOfRange) {
    UpArgs a;
    a.vms = "0";
    EXPECT_EQ(usage_error(a), "--vms must be between 1 and 16");
    a.vms = "17";
    EXPECT_EQ(usage_error(a), "--vms must be between 1 and 16");
    a.vms = "-1";
    EXPECT_EQ(usage_error(a), "--vms must be between 1 and 16");
    a.vms = "16";
    EXPECT_EQ(validate_up_args(a, 4).vms, 16);
}

TEST(UpOptions, NotANumber) {
    UpArgs a;
    a.vms = "two";
    EXPECT_EQ(usage_error(a), "--vms must be a whole number, not 'two'");
    a.vms = "2x";
    EXPECT_EQ(usage_error(a), "--vms must be a whole number, not '2x'");
    a.vms = "";
    EXPECT_EQ(usage_error(a), "--vms must be a whole number, not ''");
    a = UpArgs{};
    a.mem = "1.5";
    EXPECT_EQ(usage_error(a), "--mem must be a whole number, not '1.5'");
}

TEST(UpOptions, MemRange) {
    UpArgs a;
    a.mem = "127";
    EXPECT_EQ(usage_error(a), "--mem must be between 128 and 16384");
    a.mem = "16385";
    EXPECT_EQ(usage_error(a), "--mem must be between 128 and 16384");
    a.mem = "128";
    EXPECT_EQ(validate_up_args(a, 4).mem_mib, 128);
}

TEST(UpOptions, CpusBoundedByHost) {
    UpArgs a;
    a.cpus = "3";
    EXPECT_EQ(usage_error(a, 2), "--cpus must be between 1 and 2 (this host has 2 CPUs)");
    a.cpus = "0";
    EXPECT_EQ(usage_error(a, 2), "--cpus must be between 1 and 2 (this host has 2 CPUs)");
    a.cpus = "2";
    EXPECT_EQ(validate_up_args(a, 2).cpus, 2);
}

TEST(UpOptions, AccelAndNetNames) {
    UpArgs a;
    a.accel = "hvf";
    EXPECT_EQ(usage_error(a), "--accel must be auto, kvm or tcg, not 'hvf'");
    a = UpArgs{};
    a.net = "tap";
    EXPECT_EQ(usage_error(a), "--net must be virtio-tap, virtio-socket or partlink, not 'tap'");
    a = UpArgs{};
    a.accel = "tcg";
    a.net = "virtio-socket";
    UpOptions o = validate_up_args(a, 2);
    EXPECT_EQ(o.accel, Accel::Tcg);
    EXPECT_EQ(o.net, NetMode::VirtioSocket);
}

TEST(UpOptions, VirtioSocketIsPointToPoint) {
    UpArgs a;
    a.net = "virtio-socket";
    a.vms = "3";
    EXPECT_NE(usage_error(a).find("exactly 2 VMs"), std::string::npos);
    a.vms = "1";
    EXPECT_NE(usage_error(a).find("exactly 2 VMs"), std::string::npos);
}

TEST(UpOptions, PartlinkIsTheDefaultNet) {
    EXPECT_EQ(UpArgs{}.net, "partlink");
    EXPECT_EQ(parse_net_mode("partlink"), NetMode::Partlink);
    UpArgs a;
    a.vms = "16";
    EXPECT_EQ(validate_up_args(a, 2).net, NetMode::Partlink);
    a.net = "virtio-tap";
    EXPECT_EQ(validate_up_args(a, 2).net, NetMode::VirtioTap);
}

TEST(UpOptions, FabricConfig) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "partlink-fc-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    std::filesystem::path dir = tmpl;
    std::ofstream(dir / "good.json")
        << R"({"networks": {"a": ["vm1"], "b": ["vm2"]}, "wlm": "vm1"})";
    std::ofstream(dir / "bad.json") << "{ not json";
    std::ofstream(dir / "wlm2.json") << R"({"wlm": "vm2"})";

    UpArgs a;
    EXPECT_EQ(validate_up_args(a, 2).wlm, "vm1"); // the default, without a fabric config
    a.fabric_config = (dir / "good.json").string();
    UpOptions o = validate_up_args(a, 2);
    EXPECT_EQ(o.fabric_config, dir / "good.json");
    EXPECT_TRUE(o.fabric_config->is_absolute());
    EXPECT_EQ(o.wlm, "vm1");
    a.fabric_config = (dir / "wlm2.json").string();
    EXPECT_EQ(validate_up_args(a, 2).wlm, "vm2");
    a.vms = "1";
    EXPECT_EQ(usage_error(a), "--fabric-config " + (dir / "wlm2.json").string() +
                                  " names vm2 as the WLM partition, but the run has vm1..vm1");
    a.vms = "2";

    a.fabric_config = (dir / "missing.json").string();
    EXPECT_EQ(usage_error(a),
              "--fabric-config " + (dir / "missing.json").string() + ": no such file");
    a.fabric_config = dir.string(); // a directory
    EXPECT_NE(usage_error(a).find("no such file"), std::string::npos);
    a.fabric_config = (dir / "bad.json").string();
    EXPECT_EQ(usage_error(a).rfind("--fabric-config: ", 0), 0u) << usage_error(a);
    EXPECT_NE(usage_error(a).find("bad.json"), std::string::npos) << usage_error(a);

    a.fabric_config = (dir / "good.json").string();
    a.net = "virtio-tap";
    EXPECT_NE(usage_error(a).find("--fabric-config is for --net partlink"), std::string::npos);
    std::filesystem::remove_all(dir);
}

UpArgs with_ssh_port(const char* port, const char* vms = "2") {
    UpArgs a;
    a.vms = vms;
    a.ssh_port.emplace(port);
    return a;
}

TEST(UpOptions, SshPortBase) {
    EXPECT_EQ(*validate_up_args(with_ssh_port("10022"), 2).ssh_port_base, 10022);
    EXPECT_EQ(usage_error(with_ssh_port("0")), "--ssh-port must be between 1 and 65535");
    EXPECT_EQ(usage_error(with_ssh_port("65536")), "--ssh-port must be between 1 and 65535");
    EXPECT_NE(usage_error(with_ssh_port("65535")).find("leaves no room for 2 VMs"),
              std::string::npos);
    EXPECT_EQ(*validate_up_args(with_ssh_port("65535", "1"), 2).ssh_port_base, 65535);
}

TEST(UpOptions, Timeout) {
    UpArgs a;
    a.timeout = "0";
    EXPECT_EQ(usage_error(a), "--timeout must be between 1 and 86400");
    a.timeout = "5";
    EXPECT_EQ(validate_up_args(a, 2).timeout.count(), 5);
}

TEST(VmNames, ParseAndFormat) {
    EXPECT_EQ(parse_vm_name("vm1"), 1);
    EXPECT_EQ(parse_vm_name("vm16"), 16);
    EXPECT_FALSE(parse_vm_name("vm0"));
    EXPECT_FALSE(parse_vm_name("vm17"));
    EXPECT_FALSE(parse_vm_name("vm01"));
    EXPECT_FALSE(parse_vm_name("vm"));
    EXPECT_FALSE(parse_vm_name("vm1x"));
    EXPECT_FALSE(parse_vm_name("VM1"));
    EXPECT_FALSE(parse_vm_name("probe"));
    EXPECT_EQ(vm_name(7), "vm7");
}

TEST(HostCpus, AtLeastOne) {
    EXPECT_GE(host_cpu_count(), 1);
}

TEST(Shares, TagModeAndDefaults) {
    EXPECT_EQ(parse_share("/tmp"), (Share{"/tmp", "tmp", false}));
    EXPECT_EQ(parse_share("/tmp/"), (Share{"/tmp", "tmp", false}));
    EXPECT_EQ(parse_share("/tmp:scratch"), (Share{"/tmp", "scratch", false}));
    EXPECT_EQ(parse_share("/tmp:scratch:rw"), (Share{"/tmp", "scratch", true}));
    EXPECT_EQ(parse_share("/tmp:rw"), (Share{"/tmp", "tmp", true}));
    EXPECT_EQ(parse_share("/tmp:ro"), (Share{"/tmp", "tmp", false}));
}

TEST(Shares, BadOnesAreRefused) {
    auto error = [](const std::string& text) {
        try {
            parse_share(text);
        } catch (const UsageError& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    EXPECT_NE(error("/no/such/dir").find("/no/such/dir is not a folder"), std::string::npos);
    EXPECT_NE(error("/tmp:bad tag").find("tag 'bad tag' must be"), std::string::npos);
    EXPECT_NE(error("/tmp:" + std::string(40, 'a')).find("must be 1..31"), std::string::npos);
    EXPECT_NE(error(":x").find("--share needs a folder"), std::string::npos);
    UpArgs args;
    args.shares = {"/tmp:t", "/var:t"};
    EXPECT_EQ(usage_error(args), "--share: two folders have the tag 't'; name one: DIR:TAG");
}

TEST(QemuArgs, SplitAndPerPartition) {
    EXPECT_EQ(parse_qemu_arg("-d guest_errors", 2), (QemuArg{0, {"-d", "guest_errors"}}));
    EXPECT_EQ(parse_qemu_arg("vm2:-s", 2), (QemuArg{2, {"-s"}}));
    // A colon elsewhere is part of the option.
    EXPECT_EQ(parse_qemu_arg("-serial tcp::4444", 2), (QemuArg{0, {"-serial", "tcp::4444"}}));
    UpArgs args;
    args.qemu_args = {"vm3:-s"};
    EXPECT_EQ(usage_error(args), "--qemu-arg vm3:-s: there is no vm3 (--vms 2)");
    args.qemu_args = {"  "};
    EXPECT_NE(usage_error(args).find("--qemu-arg needs QEMU options"), std::string::npos);
}

TEST(BootOptions, KernelAndInitrdMustExist) {
    UpArgs args;
    args.kernel = "/no/such/bzImage";
    EXPECT_EQ(usage_error(args), "--kernel /no/such/bzImage: no such file");
    args.kernel = "/tmp"; // a tree is a folder
    args.initrd = "/tmp";
    EXPECT_EQ(usage_error(args), "--initrd /tmp: not a file");
    args.initrd.reset();
    EXPECT_EQ(*validate_up_args(args, 2).boot.kernel, "/tmp");
}
