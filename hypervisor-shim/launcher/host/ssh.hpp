// Reaching a guest with the real OpenSSH client.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "host/process.hpp"

namespace partlink {

// The guest's host key is the same in every image; pinning it to one alias
// keeps ssh strict without a known_hosts entry per forwarded port.
inline constexpr const char* kGuestHostKeyAlias = "partlink-guest";

struct SshTarget {
    std::filesystem::path identity;    // IMAGES/ssh/id_ed25519
    std::filesystem::path known_hosts; // IMAGES/ssh/known_hosts
    std::uint16_t port = 0;            // forwarded to the guest's port 22
};

// POSIX shell quoting of one word: left alone if it is made only of
// characters no shell treats specially, else single-quoted.
std::string shell_quote(std::string_view word);
// The words, each quoted, joined by spaces: what the remote shell must see
// to run them as the user typed them locally.
std::string shell_join(const std::vector<std::string>& words);

// ssh ... root@127.0.0.1 [CMD]; an empty command means a login shell.
std::vector<std::string> build_ssh_argv(const SshTarget& target,
                                        const std::vector<std::string>& command, bool allocate_tty,
                                        int connect_timeout_seconds = 10);

// Replaces this process with ssh, so that its exit status is ours.
[[noreturn]] void exec_ssh(const std::vector<std::string>& argv);

// `ssh ... true` in the background, output to `log`: the readiness check.
Process spawn_ssh_probe(const SshTarget& target, const std::filesystem::path& log);

} // namespace partlink
