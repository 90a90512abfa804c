#include "qemu/qemu_command.hpp"

#include <cstdio>
#include <stdexcept>

namespace partlink {

namespace {

std::string mac_with_last_byte(const char* prefix, int index) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s:%02x", prefix, index & 0xff);
    return buf;
}

std::string_view accel_name(Accel accel) {
    if (accel == Accel::Auto)
        throw std::logic_error("QEMU needs a resolved accelerator, not auto");
    return to_string(accel);
}

// Builds an argv an option at a time, so that each option and its value
// read as one line.
class Argv {
public:
    explicit Argv(std::string program) { argv_.push_back(std::move(program)); }
    void flag(std::string name) { argv_.push_back(std::move(name)); }
    void opt(std::string name, std::string_view value) {
        argv_.push_back(std::move(name));
        argv_.emplace_back(value);
    }
    void firmware_dirs(const std::vector<std::filesystem::path>& dirs) {
        for (const auto& dir : dirs)
            opt("-L", dir.string());
    }
    std::vector<std::string> take() { return std::move(argv_); }

private:
    std::vector<std::string> argv_;
};

// The NIC that carries 10.77.0.N, except in partlink mode, where the
// partlink-pci adapter does.
void data_network(Argv& argv, const VmSpec& spec) {
    switch (spec.net) {
    case NetMode::VirtioTap:
        argv.opt("-netdev", "tap,id=data,ifname=" + spec.tap + ",script=no,downscript=no");
        break;
    case NetMode::VirtioSocket: {
        std::string netdev = "stream,id=data,server=";
        netdev += spec.data_socket_server ? "on" : "off";
        netdev += ",addr.type=unix,addr.path=" + spec.data_socket.string();
        // The client may start before the server listens, or outlive it.
        if (!spec.data_socket_server)
            netdev += ",reconnect-ms=" + std::to_string(spec.data_socket_reconnect_ms);
        argv.opt("-netdev", netdev);
        break;
    }
    case NetMode::Partlink:
        // The partlink-pci device above is the data path; no virtio data NIC.
        return;
    }
    argv.opt("-device", "virtio-net-pci,netdev=data,mac=" + data_mac(spec.index) + ",romfile=");
}

} // namespace

std::string mgmt_mac(int index) {
    return mac_with_last_byte("52:54:00:a0:00", index);
}
std::string data_mac(int index) {
    return mac_with_last_byte("02:70:6c:01:00", index);
}
std::string partlink_mac(int index) {
    return mac_with_last_byte("02:70:6c:00:00", index);
}
std::string guest_ip(int index) {
    return "10.77.0." + std::to_string(index);
}

std::string data_nic_mac(int index, NetMode net) {
    return net == NetMode::Partlink ? partlink_mac(index) : data_mac(index);
}
std::string data_nic_name(NetMode net) {
    return net == NetMode::Partlink ? kPartlinkInterface : kGuestDataInterface;
}
int fabric_port(int index) {
    return index;
}

std::string share_mount_point(const Share& share) {
    return "/mnt/" + share.tag;
}

std::string kernel_command_line(int index, NetMode net, const std::vector<Share>& shares,
                                std::string_view append) {
    std::string line =
        "console=ttyS0 panic=-1 partlink.name=" + vm_name(index) +
        " partlink.index=" + std::to_string(index) + " partlink.mgmt_mac=" + mgmt_mac(index) +
        " partlink.data_mac=" + data_nic_mac(index, net) + " partlink.ip=" + guest_ip(index) + "/" +
        std::to_string(kGuestPrefixLength) + " partlink.data_if=" + data_nic_name(net);
    // The guest's init mounts each: partlink.share=TAG:MOUNTPOINT[:ro].
    for (const auto& share : shares)
        line += " partlink.share=" + share.tag + ":" + share_mount_point(share) +
                (share.writable ? "" : ":ro");
    if (!append.empty())
        line += " " + std::string(append);
    return line;
}

std::vector<std::string> qemu_args_for(const std::vector<QemuArg>& args, int index) {
    std::vector<std::string> out;
    for (const auto& arg : args)
        if (arg.vm == 0 || arg.vm == index)
            out.insert(out.end(), arg.words.begin(), arg.words.end());
    return out;
}

std::vector<std::string> build_qemu_argv(const VmSpec& spec) {
    const std::string mem = std::to_string(spec.mem_mib);
    Argv argv(spec.qemu.string());
    argv.opt("-name", vm_name(spec.index) + ",debug-threads=on");
    argv.opt("-accel", accel_name(spec.accel));
    // Under TCG, qemu64 plus RDRAND: RDRAND spares the guest's sshd the wait
    // for entropy, and "max" would make TCG emulate AVX and friends, which
    // cut iperf3 over virtio-net from 2.3 to 0.8 Gbit/s here.  Under KVM the
    // host's own CPU model is the fastest.
    argv.opt("-cpu", spec.accel == Accel::Kvm ? "host" : "qemu64,+rdrand");
    // Guest RAM must be a shareable memfd: partlink-pci hands it to peers.
    argv.opt("-machine", "q35,memory-backend=ram");
    argv.opt("-m", mem);
    argv.opt("-smp", std::to_string(spec.cpus));
    argv.opt("-object", "memory-backend-memfd,id=ram,size=" + mem + "M,share=on");
    argv.flag("-nodefaults");
    argv.flag("-no-user-config");
    argv.opt("-display", "none");
    argv.firmware_dirs(spec.firmware_dirs);
    argv.opt("-kernel", spec.kernel.string());
    argv.opt("-initrd", spec.initrd.string());
    argv.opt("-append", kernel_command_line(spec.index, spec.net, spec.shares, spec.append));
    if (spec.console_socket.empty()) {
        argv.opt("-serial", "file:" + spec.console_file.string());
    } else {
        // The console file records everything, attached or not; a client
        // of the socket (`partlink console`) types into the guest's shell.
        argv.opt("-chardev", "socket,id=console,path=" + spec.console_socket.string() +
                                 ",server=on,wait=off,logfile=" + spec.console_file.string());
        argv.opt("-serial", "chardev:console");
    }
    argv.opt("-qmp", "unix:" + spec.qmp_socket.string() + ",server=on,wait=off");
    if (!spec.hv_qmp_socket.empty()) {
        // A monitor serves one client at a time: partlinkd gets its own, so
        // that a balloon directive and `partlink stop` never queue behind
        // each other.
        argv.opt("-chardev",
                 "socket,id=hv-qmp,path=" + spec.hv_qmp_socket.string() + ",server=on,wait=off");
        argv.opt("-mon", "chardev=hv-qmp,mode=control");
    }
    argv.opt("-pidfile", spec.pid_file.string());
    // restrict=on: the management NIC reaches nothing but the forwarded ssh port.
    argv.opt("-netdev", "user,id=mgmt,restrict=on,hostfwd=tcp:127.0.0.1:" +
                            std::to_string(spec.ssh_port) + "-:22");
    argv.opt("-device", "virtio-net-pci,netdev=mgmt,mac=" + mgmt_mac(spec.index) + ",romfile=");
    // Memory directives move the guest's RAM through its balloon.
    argv.opt("-device", "virtio-balloon-pci,id=balloon0");
    const std::string adapter =
        "mac=" + partlink_mac(spec.index) + ",port=" + std::to_string(fabric_port(spec.index));
    if (spec.net == NetMode::Partlink) {
        // QEMU may start before partlinkd listens, and outlive a restart of it.
        argv.opt("-chardev", "socket,id=fabric,path=" + spec.fabric_socket.string() +
                                 ",reconnect-ms=" + std::to_string(spec.fabric_reconnect_ms));
        argv.opt("-device",
                 "partlink-pci,chardev=fabric," + adapter + ",name=" + vm_name(spec.index));
    } else {
        // No chardev: the adapter is there, its link down.
        argv.opt("-device", "partlink-pci," + adapter);
    }

    // Read-only unless asked: a guest under development should not be able
    // to scribble on the host's tree.  security_model=none: the guest sees
    // the files as they are, and chown/chmod in it do not reach the host.
    for (std::size_t i = 0; i < spec.shares.size(); ++i) {
        const Share& share = spec.shares[i];
        argv.opt("-virtfs", "local,id=share" + std::to_string(i) + ",path=" + share.dir.string() +
                                ",mount_tag=" + share.tag + ",security_model=none" +
                                (share.writable ? "" : ",readonly=on"));
    }
    if (spec.gdb_port != 0)
        argv.opt("-gdb", "tcp:127.0.0.1:" + std::to_string(spec.gdb_port));
    data_network(argv, spec);
    for (const auto& word : spec.extra_args)
        argv.flag(word);
    return argv.take();
}

std::vector<std::uint8_t> probe_bios_image(std::size_t size) {
    static constexpr std::uint8_t kResetCode[] = {
        0xB0, 0x01, // mov al, 1
        0xE6, 0xF4, // out 0xf4, al
        0xF4,       // hlt
    };
    if (size < 16)
        throw std::invalid_argument("probe BIOS must be at least 16 bytes");
    std::vector<std::uint8_t> image(size, 0);
    std::size_t reset_vector = size - 16;
    for (std::size_t i = 0; i < sizeof kResetCode; ++i)
        image[reset_vector + i] = kResetCode[i];
    return image;
}

std::vector<std::string> build_probe_argv(const std::filesystem::path& qemu, Accel accel,
                                          const std::filesystem::path& bios,
                                          const std::vector<std::filesystem::path>& firmware_dirs) {
    Argv argv(qemu.string());
    argv.opt("-accel", accel_name(accel));
    argv.opt("-machine", "pc");
    argv.opt("-bios", bios.string());
    argv.opt("-device", "isa-debug-exit,iobase=0xf4,iosize=4");
    argv.opt("-display", "none");
    argv.flag("-nodefaults");
    argv.flag("-no-user-config");
    argv.firmware_dirs(firmware_dirs);
    return argv.take();
}

std::vector<std::string>
build_kernel_probe_argv(const std::filesystem::path& qemu, Accel accel,
                        const std::filesystem::path& kernel,
                        const std::filesystem::path& console_file,
                        const std::vector<std::filesystem::path>& firmware_dirs) {
    Argv argv(qemu.string());
    argv.opt("-accel", accel_name(accel));
    argv.opt("-machine", "q35");
    argv.opt("-m", "256");
    argv.opt("-display", "none");
    argv.flag("-nodefaults");
    argv.flag("-no-user-config");
    argv.firmware_dirs(firmware_dirs);
    argv.opt("-kernel", kernel.string());
    // earlyprintk: the banner shows as soon as the kernel runs, not after
    // console setup.  panic=-1 with -no-reboot: the kernel panics for want of
    // an initrd, and QEMU then exits instead of rebooting in a loop.
    argv.opt("-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1");
    argv.flag("-no-reboot");
    argv.opt("-serial", "file:" + console_file.string());
    return argv.take();
}

} // namespace partlink
