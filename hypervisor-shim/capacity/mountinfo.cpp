#include "mountinfo.hpp"

#include "cgroup_io.hpp"

namespace partlink::capacity {

namespace {

bool is_octal(char c) {
    return c >= '0' && c <= '7';
}

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> parts;
    std::size_t pos = 0;
    for (;;) {
        const auto end = text.find(separator, pos);
        parts.emplace_back(text.substr(pos, end == std::string_view::npos ? end : end - pos));
        if (end == std::string_view::npos)
            return parts;
        pos = end + 1;
    }
}

} // namespace

std::string unescape_mount_path(std::string_view field) {
    std::string out;
    out.reserve(field.size());
    for (std::size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) &&
            is_octal(field[i + 2]) && is_octal(field[i + 3])) {
            out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                     (field[i + 3] - '0'));
            i += 3;
        } else {
            out += field[i];
        }
    }
    return out;
}

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
    // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    std::vector<MountEntry> entries;
    for (const auto& line : split(text, '\n')) {
        const auto words = split_words(line);
        std::size_t dash = 6;
        while (dash < words.size() && words[dash] != "-")
            ++dash;
        if (words.size() < 6 || dash + 3 >= words.size())
            continue;
        MountEntry entry;
        entry.root = unescape_mount_path(words[3]);
        entry.mount_point = unescape_mount_path(words[4]);
        entry.fstype = words[dash + 1];
        entry.super_options = split(words[dash + 3], ',');
        entries.push_back(std::move(entry));
    }
    return entries;
}

} // namespace partlink::capacity
