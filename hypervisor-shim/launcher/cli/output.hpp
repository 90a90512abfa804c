// Where progress messages go: the terminal for the CLI, a log for the daemon.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace partlink {

class Output {
public:
    enum class Kind {
        Info,    // "partlink: ..." headline
        Item,    // one line of a list under a headline ("vm1: up (6.2 s)")
        Warning, // something went wrong but the command goes on
    };
    using Sink = std::function<void(Kind, std::string_view)>;

    explicit Output(Sink sink)
        : sink_(std::move(sink)) {}
    static Output silent() {
        return Output([](Kind, std::string_view) {});
    }

    void info(std::string_view text) const { sink_(Kind::Info, text); }
    void item(std::string_view text) const { sink_(Kind::Item, text); }
    void warn(std::string_view text) const { sink_(Kind::Warning, text); }

private:
    Sink sink_;
};

} // namespace partlink
