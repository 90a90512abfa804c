#include "host/ssh.hpp"

#include <unistd.h>

#include "error.hpp"

namespace partlink {

std::string shell_quote(std::string_view word) {
    auto safe = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("@%+=:,./_-").find(c) != std::string_view::npos;
    };
    bool needs_quotes = word.empty();
    for (char c : word)
        needs_quotes = needs_quotes || !safe(c);
    if (!needs_quotes)
        return std::string(word);
    std::string out = "'";
    for (char c : word) {
        if (c == '\'')
            out += "'\\''"; // close, escaped quote, reopen
        else
            out += c;
    }
    out += "'";
    return out;
}

std::string shell_join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty())
            out += ' ';
        out += shell_quote(w);
    }
    return out;
}

std::vector<std::string> build_ssh_argv(const SshTarget& target,
                                        const std::vector<std::string>& command, bool allocate_tty,
                                        int connect_timeout_seconds) {
    std::vector<std::string> argv = {"ssh", "-i", target.identity.string(), "-p",
                                     std::to_string(target.port)};
    const std::string options[] = {
        std::string("HostKeyAlias=") + kGuestHostKeyAlias,
        "UserKnownHostsFile=" + target.known_hosts.string(),
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "LogLevel=ERROR",
        "ConnectTimeout=" + std::to_string(connect_timeout_seconds),
    };
    for (const auto& option : options) {
        argv.push_back("-o");
        argv.push_back(option);
    }
    if (allocate_tty)
        argv.push_back("-t");
    argv.push_back("root@127.0.0.1");
    // Several words are a command and its arguments, kept word for word
    // (quoted into one argument: ssh would join them with spaces and the
    // remote shell split them again).  A single word is a shell command
    // line, as with ssh itself: `partlink ssh vm1 -- 'a | b'`.
    if (command.size() == 1)
        argv.push_back(command.front());
    else if (!command.empty())
        argv.push_back(shell_join(command));
    return argv;
}

void exec_ssh(const std::vector<std::string>& argv) {
    exec_program(argv, "install the OpenSSH client (apt-get install openssh-client)");
}

Process spawn_ssh_probe(const SshTarget& target, const std::filesystem::path& log) {
    SpawnOptions options;
    options.output_file = log;
    return Process::spawn(build_ssh_argv(target, {"true"}, false, 5), options);
}

} // namespace partlink
