#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "qemu/qemu_command.hpp"

using namespace partlink;
using ::testing::ElementsAreArray;

namespace {

VmSpec tap_spec(int index) {
    VmSpec s;
    s.index = index;
    s.mem_mib = 512;
    s.cpus = 1;
    s.accel = Accel::Tcg;
    s.net = NetMode::VirtioTap;
    s.qemu = "/B/qemu/qemu-system-x86_64";
    s.firmware_dirs = {"/B/qemu/pc-bios", "/usr/share/seabios", "/usr/share/qemu"};
    s.kernel = "/B/images/vmlinuz";
    s.initrd = "/B/images/initramfs.cpio.gz";
    s.console_file = "/R/vm" + std::to_string(index) + ".console";
    s.qmp_socket = "/R/vm" + std::to_string(index) + ".qmp";
    s.hv_qmp_socket = "/R/vm" + std::to_string(index) + ".hv.qmp";
    s.pid_file = "/R/vm" + std::to_string(index) + ".pid";
    s.ssh_port = 10022;
    s.tap = "plt123abcv" + std::to_string(index);
    s.data_socket = "/R/data.sock";
    return s;
}

// The command line of the brief, option by option.
std::vector<std::string> common_prefix(const std::string& n, const std::string& nn,
                                       const std::string& accel, const std::string& port) {
    // clang-format off
    return {
        "/B/qemu/qemu-system-x86_64",
        "-name", "vm" + n + ",debug-threads=on",
        "-accel", accel,
        "-cpu", accel == "kvm" ? "host" : "qemu64,+rdrand",
        "-machine", "q35,memory-backend=ram",
        "-m", "512",
        "-smp", "1",
        "-object", "memory-backend-memfd,id=ram,size=512M,share=on",
        "-nodefaults", "-no-user-config",
        "-display", "none",
        "-L", "/B/qemu/pc-bios", "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
        "-kernel", "/B/images/vmlinuz",
        "-initrd", "/B/images/initramfs.cpio.gz",
        "-append", "console=ttyS0 panic=-1 partlink.name=vm" + n + " partlink.index=" + n +
                   " partlink.mgmt_mac=52:54:00:a0:00:" + nn +
                   " partlink.data_mac=02:70:6c:01:00:" + nn + " partlink.ip=10.77.0." + n +
                   "/24 partlink.data_if=data0",
        "-serial", "file:/R/vm" + n + ".console",
        "-qmp", "unix:/R/vm" + n + ".qmp,server=on,wait=off",
        "-chardev", "socket,id=hv-qmp,path=/R/vm" + n + ".hv.qmp,server=on,wait=off",
        "-mon", "chardev=hv-qmp,mode=control",
        "-pidfile", "/R/vm" + n + ".pid",
        "-netdev", "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:" + port + "-:22",
        "-device", "virtio-net-pci,netdev=mgmt,mac=52:54:00:a0:00:" + nn + ",romfile=",
        "-device", "virtio-balloon-pci,id=balloon0",
        "-device", "partlink-pci,mac=02:70:6c:00:00:" + nn + ",port=" + n,
    };
    // clang-format on
}

} // namespace

TEST(QemuCommand, Addresses) {
    EXPECT_EQ(mgmt_mac(1), "52:54:00:a0:00:01");
    EXPECT_EQ(data_mac(10), "02:70:6c:01:00:0a");
    EXPECT_EQ(partlink_mac(16), "02:70:6c:00:00:10");
    EXPECT_EQ(guest_ip(12), "10.77.0.12");
}

TEST(QemuCommand, VirtioTapArgv) {
    auto expected = common_prefix("1", "01", "tcg", "10022");
    expected.insert(expected.end(),
                    {"-netdev", "tap,id=data,ifname=plt123abcv1,script=no,downscript=no", "-device",
                     "virtio-net-pci,netdev=data,mac=02:70:6c:01:00:01,romfile="});
    EXPECT_THAT(build_qemu_argv(tap_spec(1)), ElementsAreArray(expected));
}

TEST(QemuCommand, HexMacDecimalIpAndKvm) {
    VmSpec s = tap_spec(10);
    s.accel = Accel::Kvm;
    s.ssh_port = 40000;
    auto expected = common_prefix("10", "0a", "kvm", "40000");
    expected.insert(expected.end(),
                    {"-netdev", "tap,id=data,ifname=plt123abcv10,script=no,downscript=no",
                     "-device", "virtio-net-pci,netdev=data,mac=02:70:6c:01:00:0a,romfile="});
    EXPECT_THAT(build_qemu_argv(s), ElementsAreArray(expected));
}

TEST(QemuCommand, MemoryAndCpus) {
    VmSpec s = tap_spec(1);
    s.mem_mib = 2048;
    s.cpus = 2;
    auto argv = build_qemu_argv(s);
    auto at = [&](const std::string& opt) {
        auto it = std::find(argv.begin(), argv.end(), opt);
        return it == argv.end() || it + 1 == argv.end() ? std::string() : *(it + 1);
    };
    EXPECT_EQ(at("-m"), "2048");
    EXPECT_EQ(at("-smp"), "2");
    EXPECT_EQ(at("-object"), "memory-backend-memfd,id=ram,size=2048M,share=on");
}

TEST(QemuCommand, VirtioSocketServerAndClient) {
    VmSpec server = tap_spec(1);
    server.net = NetMode::VirtioSocket;
    server.data_socket_server = true;
    auto expected = common_prefix("1", "01", "tcg", "10022");
    expected.insert(expected.end(),
                    {"-netdev", "stream,id=data,server=on,addr.type=unix,addr.path=/R/data.sock",
                     "-device", "virtio-net-pci,netdev=data,mac=02:70:6c:01:00:01,romfile="});
    EXPECT_THAT(build_qemu_argv(server), ElementsAreArray(expected));

    VmSpec client = tap_spec(2);
    client.net = NetMode::VirtioSocket;
    client.data_socket_server = false;
    auto argv = build_qemu_argv(client);
    ASSERT_GE(argv.size(), 4u);
    EXPECT_EQ(argv[argv.size() - 3],
              "stream,id=data,server=off,addr.type=unix,addr.path=/R/data.sock,reconnect-ms=500");
    EXPECT_EQ(argv.back(), "virtio-net-pci,netdev=data,mac=02:70:6c:01:00:02,romfile=");
}

TEST(QemuCommand, PartlinkArgv) {
    VmSpec s = tap_spec(3);
    s.net = NetMode::Partlink;
    s.tap.clear();
    s.fabric_socket = "/R/partlinkd.sock";
    auto expected = common_prefix("3", "03", "tcg", "10022");
    // The data interface is the partlink NIC, pl0, with the adapter's MAC.
    auto append = std::find(expected.begin(), expected.end(), "-append") + 1;
    *append = "console=ttyS0 panic=-1 partlink.name=vm3 partlink.index=3 "
              "partlink.mgmt_mac=52:54:00:a0:00:03 partlink.data_mac=02:70:6c:00:00:03 "
              "partlink.ip=10.77.0.3/24 partlink.data_if=pl0";
    // The adapter joins partlinkd's fabric through a chardev, as port 3, named vm3.
    expected.pop_back();
    expected.pop_back();
    expected.insert(expected.end(),
                    {"-chardev", "socket,id=fabric,path=/R/partlinkd.sock,reconnect-ms=500",
                     "-device",
                     "partlink-pci,chardev=fabric,mac=02:70:6c:00:00:03,port=3,name=vm3"});
    EXPECT_THAT(build_qemu_argv(s), ElementsAreArray(expected));
}

TEST(QemuCommand, PartlinkHasNoVirtioDataNic) {
    VmSpec s = tap_spec(1);
    s.net = NetMode::Partlink;
    s.fabric_socket = "/R/partlinkd.sock";
    auto argv = build_qemu_argv(s);
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-netdev"), 1); // the management NIC
    EXPECT_EQ(std::count_if(argv.begin(), argv.end(),
                            [](const std::string& a) { return a.starts_with("virtio-net-pci"); }),
              1);
    // The fabric's and partlinkd's QMP monitor's.
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-chardev"), 2);
}

TEST(QemuCommand, VirtioModesLeaveTheAdapterUnplugged) {
    for (NetMode net : {NetMode::VirtioTap, NetMode::VirtioSocket}) {
        VmSpec s = tap_spec(2);
        s.net = net;
        s.fabric_socket = "/R/partlinkd.sock";
        auto argv = build_qemu_argv(s);
        EXPECT_EQ(std::count(argv.begin(), argv.end(), "-chardev"), 1); // partlinkd's monitor
        EXPECT_EQ(std::count_if(
                      argv.begin(), argv.end(),
                      [](const std::string& a) { return a.starts_with("partlink-pci,chardev"); }),
                  0);
        EXPECT_NE(std::find(argv.begin(), argv.end(), "partlink-pci,mac=02:70:6c:00:00:02,port=2"),
                  argv.end());
    }
}

TEST(QemuCommand, WithoutPartlinkdsMonitorNoSecondQmp) {
    VmSpec s = tap_spec(1);
    s.hv_qmp_socket.clear();
    const auto argv = build_qemu_argv(s);
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-mon"), 0);
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "virtio-balloon-pci,id=balloon0"), 1);
}

TEST(QemuCommand, DataNicPerMode) {
    EXPECT_EQ(data_nic_mac(5, NetMode::Partlink), "02:70:6c:00:00:05");
    EXPECT_EQ(data_nic_mac(5, NetMode::VirtioTap), "02:70:6c:01:00:05");
    EXPECT_EQ(data_nic_name(NetMode::Partlink), "pl0");
    EXPECT_EQ(data_nic_name(NetMode::VirtioSocket), "data0");
    EXPECT_EQ(fabric_port(7), 7);
}

TEST(QemuCommand, AutoAccelIsALogicError) {
    VmSpec s = tap_spec(1);
    s.accel = Accel::Auto;
    EXPECT_THROW(build_qemu_argv(s), std::logic_error);
}

TEST(QemuCommand, KernelCommandLine) {
    EXPECT_EQ(kernel_command_line(3, NetMode::VirtioTap),
              "console=ttyS0 panic=-1 partlink.name=vm3 partlink.index=3 "
              "partlink.mgmt_mac=52:54:00:a0:00:03 partlink.data_mac=02:70:6c:01:00:03 "
              "partlink.ip=10.77.0.3/24 partlink.data_if=data0");
    EXPECT_EQ(kernel_command_line(12, NetMode::Partlink),
              "console=ttyS0 panic=-1 partlink.name=vm12 partlink.index=12 "
              "partlink.mgmt_mac=52:54:00:a0:00:0c partlink.data_mac=02:70:6c:00:00:0c "
              "partlink.ip=10.77.0.12/24 partlink.data_if=pl0");
}

TEST(ProbeCommand, BiosResetVector) {
    auto image = probe_bios_image();
    ASSERT_EQ(image.size(), 64u * 1024);
    const std::vector<std::uint8_t> code = {0xB0, 0x01, 0xE6, 0xF4, 0xF4};
    EXPECT_TRUE(std::equal(code.begin(), code.end(), image.begin() + 0xFFF0));
    EXPECT_EQ(std::count(image.begin(), image.end(), 0), static_cast<long>(image.size() - 5));
}

TEST(ProbeCommand, Argv) {
    EXPECT_THAT(
        build_probe_argv("/q/qemu-system-x86_64", Accel::Kvm, "/R/probe.bin",
                         {"/q/pc-bios", "/usr/share/seabios"}),
        ElementsAreArray(std::vector<std::string>{
            "/q/qemu-system-x86_64", "-accel", "kvm", "-machine", "pc", "-bios", "/R/probe.bin",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-display", "none", "-nodefaults",
            "-no-user-config", "-L", "/q/pc-bios", "-L", "/usr/share/seabios"}));
}

TEST(ProbeCommand, KernelProbeArgv) {
    auto argv = build_kernel_probe_argv("/q/qemu-system-x86_64", Accel::Kvm, "/I/vmlinuz",
                                        "/R/probe.console", {"/usr/share/seabios"});
    auto at = [&](const std::string& opt) {
        auto it = std::find(argv.begin(), argv.end(), opt);
        return it == argv.end() || it + 1 == argv.end() ? std::string() : *(it + 1);
    };
    EXPECT_EQ(argv.front(), "/q/qemu-system-x86_64");
    EXPECT_EQ(at("-accel"), "kvm");
    EXPECT_EQ(at("-kernel"), "/I/vmlinuz");
    EXPECT_EQ(at("-serial"), "file:/R/probe.console");
    EXPECT_NE(at("-append").find("earlyprintk=ttyS0"), std::string::npos);
    EXPECT_NE(std::find(argv.begin(), argv.end(), "-no-reboot"), argv.end());
    EXPECT_EQ(std::find(argv.begin(), argv.end(), "-initrd"), argv.end());
}

TEST(QemuCommand, DeveloperLoopOptions) {
    VmSpec s = tap_spec(2);
    s.net = NetMode::Partlink;
    s.fabric_socket = "/R/partlinkd.sock";
    s.console_socket = "/R/vm2.console.sock";
    s.shares = {{"/src", "src", false}, {"/out", "out", true}};
    s.gdb_port = 1234;
    s.append = "loglevel=7";
    s.extra_args = {"-d", "guest_errors"};
    auto argv = build_qemu_argv(s);
    auto has = [&](const std::string& opt, const std::string& value) {
        for (std::size_t i = 0; i + 1 < argv.size(); ++i)
            if (argv[i] == opt && argv[i + 1] == value)
                return true;
        return false;
    };
    EXPECT_TRUE(has("-chardev", "socket,id=console,path=/R/vm2.console.sock,server=on,wait=off,"
                                "logfile=/R/vm2.console"));
    EXPECT_TRUE(has("-serial", "chardev:console"));
    EXPECT_TRUE(has("-virtfs", "local,id=share0,path=/src,mount_tag=src,security_model=none,"
                               "readonly=on"));
    EXPECT_TRUE(has("-virtfs", "local,id=share1,path=/out,mount_tag=out,security_model=none"));
    EXPECT_TRUE(has("-gdb", "tcp:127.0.0.1:1234"));
    // The user's options come last, so that they can override ours.
    ASSERT_GE(argv.size(), 2u);
    EXPECT_EQ(argv[argv.size() - 2], "-d");
    EXPECT_EQ(argv.back(), "guest_errors");
    const std::string& append = argv[static_cast<std::size_t>(
        std::find(argv.begin(), argv.end(), "-append") - argv.begin() + 1)];
    EXPECT_NE(append.find(" partlink.share=src:/mnt/src:ro partlink.share=out:/mnt/out "
                          "loglevel=7"),
              std::string::npos)
        << append;
}

TEST(QemuCommand, QemuArgsPerPartition) {
    std::vector<QemuArg> args = {{0, {"-a"}}, {2, {"-b", "x"}}, {1, {"-c"}}};
    EXPECT_EQ(qemu_args_for(args, 1), (std::vector<std::string>{"-a", "-c"}));
    EXPECT_EQ(qemu_args_for(args, 2), (std::vector<std::string>{"-a", "-b", "x"}));
    EXPECT_EQ(qemu_args_for(args, 3), std::vector<std::string>{"-a"});
}
