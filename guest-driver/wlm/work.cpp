#include "work.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace plwlm {
namespace {

constexpr std::size_t kWorkWords = 256; // 2 KiB: stays in L1

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

bool printable(std::string_view line) noexcept {
    return std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

std::string hex64(std::uint64_t value) {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
    return text;
}

} // namespace

std::uint64_t work(std::string_view input, unsigned rounds) noexcept {
    // FNV-1a of the request seeds the buffer...
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char c : input) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    std::array<std::uint64_t, kWorkWords> buffer;
    std::uint64_t seed = h;
    for (auto& word : buffer)
        word = splitmix64(seed);
    // ...then every round chains a multiply-xorshift through all of it and
    // writes it back, so round r+1 depends on round r.
    for (unsigned r = 0; r < rounds; ++r) {
        for (auto& word : buffer) {
            h = (h ^ word) * 0x9e3779b97f4a7c15ull;
            h ^= h >> 32;
            word = h;
        }
    }
    return h;
}

std::size_t LineBuffer::room() const noexcept {
    // Enough for one more maximal line and its "\r\n" beyond what is held;
    // a full buffer without '\n' is overlong anyway.
    const std::size_t cap = 2 * (max_line_ + 2);
    return data_.size() >= cap ? 0 : cap - data_.size();
}

bool LineBuffer::ready() const noexcept {
    return data_.find('\n') != std::string::npos || data_.size() > max_line_ + 1;
}

LineBuffer::Next LineBuffer::next() {
    const auto nl = data_.find('\n');
    if (nl == std::string::npos) {
        // max_line bytes and a '\r' may still be followed by the '\n'.
        if (data_.size() > max_line_ + 1)
            return {Status::overlong, {}};
        return {Status::need_more, {}};
    }
    std::size_t length = nl;
    if (length > 0 && data_[length - 1] == '\r')
        --length;
    if (length > max_line_)
        return {Status::overlong, {}};
    Next next{Status::line, data_.substr(0, length)};
    data_.erase(0, nl + 1);
    return next;
}

std::string answer_request(std::string_view line, unsigned rounds) {
    if (line.empty())
        return "ERR empty\n";
    if (line.size() > kMaxRequest)
        return std::string(kAnswerTooLong);
    if (!printable(line))
        return "ERR bad-request\n";
    return "OK " + hex64(work(line, rounds)) + "\n";
}

ServerAnswer parse_answer(std::string_view line) {
    ServerAnswer a;
    if (line.size() == 19 && line.substr(0, 3) == "OK ") {
        const auto digits = line.substr(3);
        const bool lower_hex = std::all_of(digits.begin(), digits.end(), [](char c) {
            return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        });
        const auto [ptr, ec] =
            std::from_chars(digits.data(), digits.data() + digits.size(), a.value, 16);
        if (lower_hex && ec == std::errc{} && ptr == digits.data() + digits.size())
            a.kind = ServerAnswer::Kind::ok;
        return a;
    }
    if (line.size() > 4 && line.size() <= 64 && line.substr(0, 4) == "ERR " && printable(line)) {
        a.kind = ServerAnswer::Kind::error;
        a.reason = std::string(line.substr(4));
    }
    return a;
}

double next_backoff(double previous) noexcept {
    if (!(previous >= 0.05))
        return 0.05;
    return std::min(previous * 2, 2.0);
}

LoadSeries::Second LoadSeries::close_second() {
    const Second s{current_served_, current_errors_};
    seconds_.push_back(s);
    served_ += s.served;
    errors_ += s.errors;
    current_served_ = current_errors_ = 0;
    return s;
}

std::uint64_t LoadSeries::total_served() const noexcept {
    return served_ + current_served_;
}

std::uint64_t LoadSeries::total_errors() const noexcept {
    return errors_ + current_errors_;
}

std::string LoadSeries::second_json(double time, const Second& s) {
    // Milliseconds are plenty and keep the line short.
    const nlohmann::ordered_json j = {
        {"time", std::round(time * 1000) / 1000}, {"served", s.served}, {"errors", s.errors}};
    return j.dump();
}

std::string LoadSeries::second_line(std::size_t index, const Second& s) {
    return "[" + std::to_string(index) + "] served " + std::to_string(s.served) + " errors " +
           std::to_string(s.errors);
}

std::string LoadSeries::summary(double elapsed, bool json) const {
    const double mean = elapsed > 0 ? static_cast<double>(total_served()) / elapsed : 0.0;
    if (json) {
        nlohmann::json per_second = nlohmann::json::array();
        for (const auto& s : seconds_)
            per_second.push_back(s.served);
        const nlohmann::ordered_json j = {{"total", total_served()},
                                          {"errors", total_errors()},
                                          {"elapsed", std::round(elapsed * 1000) / 1000},
                                          {"mean_rate", std::round(mean * 10) / 10},
                                          {"per_second", per_second}};
        return j.dump();
    }
    char head[160];
    std::snprintf(head, sizeof head, "total %llu served, %llu errors in %.1f s: %.1f requests/s",
                  static_cast<unsigned long long>(total_served()),
                  static_cast<unsigned long long>(total_errors()), elapsed, mean);
    std::string text = head;
    text += "\nper second:";
    for (const auto& s : seconds_)
        text += " " + std::to_string(s.served);
    return text;
}

} // namespace plwlm
