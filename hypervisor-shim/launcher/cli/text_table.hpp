// Plain-text tables for the CLI's reports (`status`, `wlm log`).
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace partlink {

using Table = std::vector<std::vector<std::string>>;

// Columns padded to their widest cell, two spaces apart; the last column is
// not padded (a reason or a path can be long) and no line ends in spaces.
inline std::string render_table(const Table& rows) {
    std::vector<std::size_t> width;
    for (const auto& r : rows) {
        width.resize(std::max(width.size(), r.size()));
        for (std::size_t i = 0; i < r.size(); ++i)
            width[i] = std::max(width[i], r[i].size());
    }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (std::size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size())
                line += std::string(width[i] - r[i].size() + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        out += line + "\n";
    }
    return out;
}

} // namespace partlink
