// Host side of the virtio-tap data network: one Linux bridge per run
// directory and one tap per partition.  Interfaces are named from a hash of
// the run directory, so that parallel runs never collide and `down` can find
// a crashed run's interfaces by name alone.  The bridge never gets an
// address: the host is not a member of the partitions' data network.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace partlink {

inline constexpr std::size_t kMaxIfnameLength = 15; // IFNAMSIZ - 1

class IfNames {
public:
    // `run_dir` must already be canonical (RunDir::path()).
    static IfNames for_run_dir(const std::filesystem::path& run_dir);

    const std::string& hash() const { return hash_; }
    std::string bridge() const;       // plbr<hash>
    std::string tap(int index) const; // plt<hash>v<N>
    // True for the bridge and for any tap of this run.
    bool is_ours(std::string_view ifname) const;

private:
    explicit IfNames(std::string hash)
        : hash_(std::move(hash)) {}
    std::string hash_;
};

// Six hex digits of FNV-1a over the path: short enough for IFNAMSIZ with
// room for the VM number, long enough that two run dirs rarely share one.
std::string run_dir_hash(std::string_view path);

// Names of the host's network interfaces (from /sys/class/net).
std::vector<std::string> list_interfaces();
bool interface_exists(const std::string& name);

// Each runs `ip` and throws an Error with ip's own message on failure.
void create_bridge(const std::string& name);
void create_tap(const std::string& name, const std::string& bridge);
// Returns false if there was no such interface.
bool delete_interface(const std::string& name);

} // namespace partlink
