// Small text and file helpers the C++ components share.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace partlink {

// "a, b, c"; `empty` if there is nothing to join.
inline std::string join(const std::vector<std::string>& items, const std::string& empty = "") {
    std::string out;
    for (const auto& item : items)
        out += (out.empty() ? "" : ", ") + item;
    return out.empty() ? empty : out;
}

// Without trailing newlines and spaces (a command's output, a log's tail).
inline std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

// Removes a file that may not be there; a file that stays is noticed by
// whoever needs it gone.
inline void remove_if_exists(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::remove(p, ec);
}

} // namespace partlink
