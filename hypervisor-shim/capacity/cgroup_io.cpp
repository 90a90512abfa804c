#include "cgroup_io.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "unique_fd.hpp"

namespace fs = std::filesystem;

namespace partlink::capacity {

namespace {

bool is_permission_errno(int err) {
    return err == EACCES || err == EPERM || err == EROFS;
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
}

} // namespace

std::string permission_advice(const fs::path& file, int err) {
    if (err == EROFS)
        return "the cgroup filesystem holding " + file.string() +
               " is mounted read-only (a container?): run partlinkd on the host, or remount "
               "it read-write";
    std::error_code ec;
    const auto dir = fs::is_directory(file, ec) ? file : file.parent_path();
    return "partlinkd needs write access to " + file.string() +
           ": run it as root, or delegate the cgroup directory to its user (chown -R USER " +
           dir.string() + ")";
}

void throw_cgroup_error(std::string_view action, const fs::path& file, int err,
                        std::string_view hint) {
    std::string message =
        std::string(action) + " " + file.string() + " failed: " + std::strerror(err);
    if (is_permission_errno(err))
        throw CgroupPermissionError(message + ": " + permission_advice(file, err));
    if (!hint.empty())
        message += ": " + std::string(hint);
    throw CgroupError(message);
}

std::string read_control(const fs::path& file) {
    UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd)
        throw_cgroup_error("reading", file, errno,
                           errno == ENOENT ? "is the controller enabled for this cgroup?" : "");
    std::string text;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw_cgroup_error("reading", file, errno);
        }
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
}

int try_write_control(const fs::path& file, std::string_view value, WriteMode mode) {
    const int flags = O_WRONLY | O_CLOEXEC | (mode == WriteMode::append ? O_APPEND : O_TRUNC);
    UniqueFd fd(::open(file.c_str(), flags));
    if (!fd)
        return errno;
    // cgroupfs parses each write(2) as one whole value: never split it.
    const std::string line = std::string(value) + "\n";
    ssize_t n;
    do {
        n = ::write(fd.get(), line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno;
    return static_cast<std::size_t>(n) == line.size() ? 0 : EIO;
}

void write_control(const fs::path& file, std::string_view value, WriteMode mode) {
    if (const int err = try_write_control(file, value, mode); err != 0)
        throw_cgroup_error("writing '" + std::string(value) + "' to", file, err,
                           err == ENOENT ? "is the controller enabled for this cgroup?" : "");
}

std::vector<std::string> split_words(std::string_view text) {
    std::vector<std::string> words;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto start = text.find_first_not_of(" \t\r\n", pos);
        if (start == std::string_view::npos)
            break;
        auto end = text.find_first_of(" \t\r\n", start);
        if (end == std::string_view::npos)
            end = text.size();
        words.emplace_back(text.substr(start, end - start));
        pos = end;
    }
    return words;
}

std::map<std::string, std::uint64_t> parse_flat_keyed(std::string_view text) {
    std::map<std::string, std::uint64_t> values;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const auto words = split_words(text.substr(pos, end - pos));
        pos = end + 1;
        if (words.size() != 2)
            continue;
        std::uint64_t value = 0;
        const auto& v = words[1];
        const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
        if (ec == std::errc() && ptr == v.data() + v.size())
            values[words[0]] = value;
    }
    return values;
}

std::int64_t parse_integer(std::string_view text, const fs::path& file) {
    const auto t = trim(text);
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
    if (ec != std::errc() || ptr != t.data() + t.size() || t.empty())
        throw CgroupError(file.string() + " holds '" + std::string(t) +
                          "', not an integer: is this really a cgroup cpu file?");
    return value;
}

} // namespace partlink::capacity
