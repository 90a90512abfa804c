// QEMU's command line for one partition, and for the KVM probe.  Pure
// functions of their inputs so that the exact argv is unit-tested.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "run/options.hpp"

namespace partlink {

// Addresses of partition N (1-based).  The guest's init reads them from the
// kernel command line; the last MAC byte and the last IP octet are N.
std::string mgmt_mac(int index);     // 52:54:00:a0:00:NN, slirp management NIC
std::string data_mac(int index);     // 02:70:6c:01:00:NN, virtio data NIC
std::string partlink_mac(int index); // 02:70:6c:00:00:NN, partlink-pci adapter
std::string guest_ip(int index);     // 10.77.0.N
inline constexpr int kGuestPrefixLength = 24;
inline constexpr const char* kGuestDataInterface = "data0"; // virtio-net data NIC
inline constexpr const char* kPartlinkInterface = "pl0";    // partlink.ko's name
// The NIC that carries 10.77.0.N in this mode: partlink-pci, or virtio-net.
std::string data_nic_mac(int index, NetMode net);
std::string data_nic_name(NetMode net);
// partlink-pci's fabric port (its `port` property): partition N is port N.
int fabric_port(int index);

struct VmSpec {
    int index = 1;
    int mem_mib = 512;
    int cpus = 1;
    Accel accel = Accel::Tcg; // kvm or tcg, never auto
    NetMode net = NetMode::VirtioTap;
    std::filesystem::path qemu;
    std::vector<std::filesystem::path> firmware_dirs; // -L, in order
    std::filesystem::path kernel;
    std::filesystem::path initrd;
    std::filesystem::path console_file;   // everything the serial port prints
    std::filesystem::path console_socket; // `partlink console` attaches here; none if empty
    std::filesystem::path qmp_socket;     // the launcher's QMP monitor
    std::filesystem::path hv_qmp_socket;  // partlinkd's (the balloon); none if empty
    std::filesystem::path pid_file;
    std::uint16_t ssh_port = 0;
    std::string tap;                     // NetMode::VirtioTap
    std::filesystem::path data_socket;   // NetMode::VirtioSocket
    bool data_socket_server = false;     // NetMode::VirtioSocket: vm1 listens
    int data_socket_reconnect_ms = 500;  // NetMode::VirtioSocket: client side
    std::filesystem::path fabric_socket; // NetMode::Partlink: partlinkd's socket
    int fabric_reconnect_ms = 500;       // NetMode::Partlink: QEMU reconnects to partlinkd
    // The developer loop: kernel arguments added, host folders, gdbstub,
    // the user's own QEMU options (appended last, so that they can override).
    std::string append;
    std::vector<Share> shares;
    std::uint16_t gdb_port = 0; // 0: no gdbstub
    std::vector<std::string> extra_args;
};

// Where a share appears in the guest.
std::string share_mount_point(const Share& share);
std::string kernel_command_line(int index, NetMode net, const std::vector<Share>& shares = {},
                                std::string_view append = {});
// The --qemu-arg words that apply to partition `index`, in order.
std::vector<std::string> qemu_args_for(const std::vector<QemuArg>& args, int index);
std::vector<std::string> build_qemu_argv(const VmSpec& spec);

// A BIOS image of `size` bytes whose reset vector (size - 16) executes
// `mov al,1; out 0xf4,al; hlt`: with isa-debug-exit at 0xf4, a guest that
// runs its first instruction makes QEMU exit with status (1 << 1) | 1 = 3.
inline constexpr std::size_t kProbeBiosSize = 64 * 1024;
inline constexpr int kProbeBootedExitStatus = 3;
std::vector<std::uint8_t> probe_bios_image(std::size_t size = kProbeBiosSize);

std::vector<std::string> build_probe_argv(const std::filesystem::path& qemu, Accel accel,
                                          const std::filesystem::path& bios,
                                          const std::vector<std::filesystem::path>& firmware_dirs);

// Second stage of the KVM probe: boot the real guest kernel, no initrd, and
// watch its serial console for the banner.  On some hosts KVM runs the
// first instructions of a guest but then crawls (each guest write costing a
// millisecond), so a guest must be seen doing real work.
inline constexpr const char* kKernelBanner = "Linux version";
std::vector<std::string>
build_kernel_probe_argv(const std::filesystem::path& qemu, Accel accel,
                        const std::filesystem::path& kernel,
                        const std::filesystem::path& console_file,
                        const std::vector<std::filesystem::path>& firmware_dirs);

} // namespace partlink
