#include "json_lines.hpp"

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include "error.hpp"

namespace fs = std::filesystem;

namespace partlink::capacity {

JsonLinesFile::JsonLinesFile(fs::path file, std::string what, Sync sync)
    : path_(std::move(file))
    , what_(std::move(what))
    , sync_(sync) {
    const bool existed = fs::exists(path_);
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640));
    if (!fd_)
        throw_errno("cannot open " + what_ + " " + path_.string() +
                    " for appending (check that its directory exists and is writable)");
    if (!existed && sync_ == Sync::every_line) {
        // The new file's name must survive a crash as well as its lines.
        UniqueFd dir(::open(path_.parent_path().empty() ? "." : path_.parent_path().c_str(),
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (dir)
            ::fsync(dir.get());
    }
}

void JsonLinesFile::append(const nlohmann::ordered_json& object) {
    const std::string line =
        object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    ssize_t n;
    do {
        n = ::write(fd_.get(), line.data(), line.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        throw_errno("cannot append to " + what_ + " " + path_.string());
    if (static_cast<std::size_t>(n) != line.size())
        throw Error("short write to " + what_ + " " + path_.string() + " (disk full?)");
    if (sync_ == Sync::every_line && ::fsync(fd_.get()) != 0)
        throw_errno("cannot sync " + what_ + " " + path_.string());
}

void read_json_lines(std::istream& in, const std::function<void(const nlohmann::json&)>& take,
                     std::vector<std::string>& problems, bool skip_first) {
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (skip_first && number == 1)
            continue;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        try {
            take(nlohmann::json::parse(line));
        } catch (const std::exception& e) {
            problems.push_back("line " + std::to_string(number) + ": " + e.what());
        }
    }
}

} // namespace partlink::capacity
