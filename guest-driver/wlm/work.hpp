// The demo workload's pure part (no I/O): the CPU work one request costs, the
// request/answer line protocol, and the per-second accounting of `plwlm load`.
// workload.* puts sockets around it.
//
// Protocol: a request is one line of 1 to kMaxRequest printable ASCII bytes
// (0x20-0x7e) ending in '\n' ("\r\n" is accepted). The answer is one line:
// "OK <16 hex digits>\n", the result of work(request, N), or "ERR <reason>\n".
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plwlm {

// Rounds of work per request: about 1.5 ms of one host core (x86-64, 2020s;
// see README). Under TCG a guest is 10-30 times slower: lower it there.
inline constexpr unsigned kDefaultWork = 3000;
inline constexpr unsigned kMaxWork = 100'000'000;

// Longest request line, without its '\n'.
inline constexpr std::size_t kMaxRequest = 256;

// The CPU work of one request: `rounds` passes of a multiply-xorshift hash
// chained over a 2 KiB buffer seeded from `input`. Deterministic (only
// 64-bit integer arithmetic: the same everywhere), and each pass depends on
// the last, so the compiler cannot skip any.
std::uint64_t work(std::string_view input, unsigned rounds) noexcept;

// Frames lines out of a byte stream that arrives in pieces.
class LineBuffer {
public:
    explicit LineBuffer(std::size_t max_line = kMaxRequest)
        : max_line_(max_line) {}

    // Appends received bytes.
    void append(std::string_view bytes) { data_.append(bytes); }
    // Bytes held, complete lines or not.
    std::size_t size() const noexcept { return data_.size(); }
    // How many more bytes to read at most: keeps the buffer bounded.
    std::size_t room() const noexcept;

    enum class Status { line, need_more, overlong };
    struct Next {
        Status status = Status::need_more;
        std::string line; // without "\n" or "\r\n"; only with Status::line
    };
    // The next complete line. `overlong` when more than max_line bytes come
    // before a '\n' (the stream cannot be trusted to resynchronize: close it).
    Next next();
    // Whether next() would return a line or overlong without more input.
    bool ready() const noexcept;

private:
    std::size_t max_line_;
    std::string data_;
};

// The answer to one request line (with its '\n'): "OK <hex>" when the line is
// a valid request, after work(line, rounds); "ERR empty" or "ERR bad-request"
// (a byte outside 0x20-0x7e) without doing any work.
std::string answer_request(std::string_view line, unsigned rounds);

// The answer to a line longer than kMaxRequest; the server closes after it.
inline constexpr std::string_view kAnswerTooLong = "ERR too-long\n";
// The answer to a connection beyond --max-connections; closed after it.
inline constexpr std::string_view kAnswerBusy = "ERR busy\n";

// One answer line, as the client sees it (without '\n').
struct ServerAnswer {
    enum class Kind { ok, error, malformed } kind = Kind::malformed;
    std::uint64_t value = 0; // with ok
    std::string reason;      // with error: the server's reason
};
ServerAnswer parse_answer(std::string_view line);

// Exponential reconnect delay: 0.05 s doubling to 2 s.
double next_backoff(double previous) noexcept;

// Per-second accounting of `plwlm load`. Events count into the current
// second; close_second() ends it.
class LoadSeries {
public:
    void served(std::uint64_t n = 1) noexcept { current_served_ += n; }
    void error(std::uint64_t n = 1) noexcept { current_errors_ += n; }

    struct Second {
        std::uint64_t served = 0;
        std::uint64_t errors = 0;
    };
    // Ends the current second and returns it.
    Second close_second();

    // Full seconds so far.
    const std::vector<Second>& seconds() const noexcept { return seconds_; }
    // Everything, including the second in progress.
    std::uint64_t total_served() const noexcept;
    std::uint64_t total_errors() const noexcept;

    // The per-second JSON line: {"time":T,"served":N,"errors":E}.
    static std::string second_json(double time, const Second& s);
    // "[3] served 512 errors 0"
    static std::string second_line(std::size_t index, const Second& s);
    // The summary over `elapsed` seconds: one JSON line, or two lines of text.
    std::string summary(double elapsed, bool json) const;

private:
    std::vector<Second> seconds_;
    std::uint64_t served_ = 0, errors_ = 0; // in closed seconds
    std::uint64_t current_served_ = 0, current_errors_ = 0;
};

} // namespace plwlm
