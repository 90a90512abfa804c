// A JSON-lines file as partlinkd's logs use it: one JSON object per line,
// appended whole by one write(2) on an O_APPEND descriptor (so concurrent
// writers interleave lines, never parts of them), and read back line by line
// with the lines that do not parse (a torn last line, a hand edit) reported
// rather than fatal.  The audit log and the chart log are two of these.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <istream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "unique_fd.hpp"

namespace partlink::capacity {

class JsonLinesFile {
public:
    enum class Sync { none, every_line };

    // Opens (creating) `file` for appending only.  `what` names the file in
    // errors ("the capacity audit log").  With Sync::every_line a new
    // file's name is synced to its directory too.
    JsonLinesFile(std::filesystem::path file, std::string what, Sync sync);

    // Untrusted strings in `object` (a garbage partition name) are written
    // with U+FFFD for their invalid bytes rather than making this throw.
    void append(const nlohmann::ordered_json& object);
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    std::string what_;
    Sync sync_;
    UniqueFd fd_;
};

// Calls `take` on each non-blank line's JSON; a line that does not parse or
// that `take` throws on becomes "line N: why" in `problems`.  skip_first:
// the stream starts mid-line (a tail), so its first line is not whole.
void read_json_lines(std::istream& in, const std::function<void(const nlohmann::json&)>& take,
                     std::vector<std::string>& problems, bool skip_first = false);

} // namespace partlink::capacity
