// The demo workload: the work function, the line protocol, the load
// accounting, and `serve` + `load` on 127.0.0.1 in threads.
#include <chrono>
#include <sstream>
#include <string>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "exit_status.hpp"
#include "work.hpp"
#include "workload.hpp"

namespace plwlm {
namespace {

// ---- work ------------------------------------------------------------------

TEST(Work, IsDeterministic) {
    EXPECT_EQ(work("req 0 1", 100), work("req 0 1", 100));
    EXPECT_EQ(work("", 0), work("", 0));
    // Pinned: the same on every machine and build (64-bit integer arithmetic
    // only). A change here changes what every deployed server answers.
    EXPECT_EQ(work("hello", 10), 0x708e1a97f9419a35ull);
}

TEST(Work, DependsOnInputAndRounds) {
    EXPECT_NE(work("req 0 1", 100), work("req 0 2", 100));
    EXPECT_NE(work("req 0 1", 100), work("req 0 1", 101));
    EXPECT_NE(work("a", 0), work("b", 0));
}

// ---- line framing ------------------------------------------------------------

TEST(LineBuffer, FramesLinesArrivingInPieces) {
    LineBuffer b(16);
    b.append("hel");
    EXPECT_FALSE(b.ready());
    EXPECT_EQ(b.next().status, LineBuffer::Status::need_more);
    b.append("lo\r\nwor");
    auto n = b.next();
    ASSERT_EQ(n.status, LineBuffer::Status::line);
    EXPECT_EQ(n.line, "hello");
    EXPECT_EQ(b.next().status, LineBuffer::Status::need_more);
    b.append("ld\n\n");
    EXPECT_EQ(b.next().line, "world");
    n = b.next();
    ASSERT_EQ(n.status, LineBuffer::Status::line);
    EXPECT_EQ(n.line, "");
    EXPECT_EQ(b.size(), 0u);
}

TEST(LineBuffer, MaximalLineIsAcceptedOneMoreIsOverlong) {
    LineBuffer b(16);
    b.append(std::string(16, 'x') + "\r");
    EXPECT_EQ(b.next().status, LineBuffer::Status::need_more); // the '\n' may follow
    b.append("\n");
    EXPECT_EQ(b.next().line, std::string(16, 'x'));

    LineBuffer c(16);
    c.append(std::string(17, 'x') + "\n");
    EXPECT_EQ(c.next().status, LineBuffer::Status::overlong);

    LineBuffer d(16);
    d.append(std::string(18, 'x')); // no '\n' yet, but already too long
    EXPECT_TRUE(d.ready());
    EXPECT_EQ(d.next().status, LineBuffer::Status::overlong);
}

TEST(LineBuffer, RoomIsBounded) {
    LineBuffer b(16);
    EXPECT_GT(b.room(), 16u);
    b.append(std::string(b.room(), '\n'));
    EXPECT_EQ(b.room(), 0u);
}

// ---- request / answer ----------------------------------------------------------

TEST(Protocol, ValidRequestGetsTheWorkResult) {
    const auto answer = answer_request("req 3 17", 50);
    ASSERT_EQ(answer.size(), 20u);
    EXPECT_EQ(answer.back(), '\n');
    const auto parsed = parse_answer(std::string_view(answer).substr(0, 19));
    ASSERT_EQ(parsed.kind, ServerAnswer::Kind::ok);
    EXPECT_EQ(parsed.value, work("req 3 17", 50));
}

TEST(Protocol, GarbageIsRejectedWithoutWork) {
    EXPECT_EQ(answer_request("", 1000000), "ERR empty\n");
    for (const std::string& bad :
         {std::string("\x01\x02"), std::string("a\tb"), std::string("nul\0here", 8),
          std::string("\xff\xfe"), std::string("caf\xc3\xa9")})
        EXPECT_EQ(answer_request(bad, 1000000), "ERR bad-request\n") << bad;
    EXPECT_EQ(answer_request(std::string(kMaxRequest + 1, 'x'), 1), std::string(kAnswerTooLong));
    EXPECT_EQ(answer_request(std::string(kMaxRequest, 'x'), 1).substr(0, 3), "OK ");
}

TEST(Protocol, AnswerParsing) {
    auto a = parse_answer("OK 00000000000000ff");
    EXPECT_EQ(a.kind, ServerAnswer::Kind::ok);
    EXPECT_EQ(a.value, 255u);
    a = parse_answer("ERR busy");
    EXPECT_EQ(a.kind, ServerAnswer::Kind::error);
    EXPECT_EQ(a.reason, "busy");
    for (const char* bad : {"", "OK", "OK ", "OK 00000000000000FF", "OK 00000000000000f",
                            "OK 00000000000000fff", "OK 0000000000000-ff", "ok 00000000000000ff",
                            "ERR", "ERR ", "ERR \x01", "HTTP/1.1 400 Bad Request", "\xff"})
        EXPECT_EQ(parse_answer(bad).kind, ServerAnswer::Kind::malformed) << bad;
}

TEST(Backoff, DoublesFromFiftyMillisecondsToTwoSeconds) {
    double b = 0;
    std::vector<double> seen;
    for (int i = 0; i < 8; ++i)
        seen.push_back(b = next_backoff(b));
    EXPECT_EQ(seen, (std::vector<double>{0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0}));
}

// ---- accounting ------------------------------------------------------------------

TEST(LoadSeries, CountsPerSecondAndInTotal) {
    LoadSeries s;
    s.served(10);
    s.error();
    const auto first = s.close_second();
    EXPECT_EQ(first.served, 10u);
    EXPECT_EQ(first.errors, 1u);
    s.served(20);
    s.close_second();
    s.served(5); // a partial second: in the total, not in the per-second list
    EXPECT_EQ(s.total_served(), 35u);
    EXPECT_EQ(s.total_errors(), 1u);
    ASSERT_EQ(s.seconds().size(), 2u);

    const auto line = nlohmann::json::parse(LoadSeries::second_json(1732526400.1234, first));
    EXPECT_DOUBLE_EQ(line["time"].get<double>(), 1732526400.123);
    EXPECT_EQ(line["served"], 10);
    EXPECT_EQ(line["errors"], 1);
    EXPECT_EQ(LoadSeries::second_line(1, first), "[1] served 10 errors 1");

    const auto summary = nlohmann::json::parse(s.summary(2.5, true));
    EXPECT_EQ(summary["total"], 35);
    EXPECT_EQ(summary["errors"], 1);
    EXPECT_DOUBLE_EQ(summary["mean_rate"].get<double>(), 14.0);
    EXPECT_EQ(summary["per_second"], nlohmann::json::array({10, 20}));
    EXPECT_EQ(s.summary(2.5, false),
              "total 35 served, 1 errors in 2.5 s: 14.0 requests/s\nper second: 10 20");
}

// ---- serve and load on loopback --------------------------------------------------

constexpr unsigned kTestWork = 100;

// A server in a thread on 127.0.0.1:<free port>, stopped by an eventfd.
class Server {
public:
    explicit Server(int max_connections = 64)
        : listener_(TcpListener::bind(parse_listen("127.0.0.1:0")))
        , stop_(::eventfd(0, EFD_CLOEXEC)) {
        options_.work = kTestWork;
        options_.max_connections = max_connections;
        thread_ = std::thread([this] { stats_ = serve(listener_, options_, stop_, log_); });
    }
    ~Server() { stop(); }

    ServeStats stop() {
        if (thread_.joinable()) {
            const std::uint64_t one = 1;
            EXPECT_EQ(::write(stop_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
            thread_.join();
            ::close(stop_);
        }
        return stats_;
    }
    std::string address() const { return listener_.local().str(); }
    std::uint16_t port() const { return listener_.local().port; }

private:
    TcpListener listener_;
    int stop_;
    ServeOptions options_;
    ServeStats stats_;
    std::ostringstream log_;
    std::thread thread_;
};

// A blocking client socket with a receive timeout, for hand-made traffic.
class RawClient {
public:
    explicit RawClient(std::uint16_t port)
        : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        timeval tv{2, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const auto sa = Endpoint{0x7f000001, port}.sockaddr();
        connected_ = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
    }
    bool connected() const { return connected_; }
    void send(std::string_view bytes) {
        ASSERT_EQ(::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL),
                  static_cast<ssize_t>(bytes.size()));
    }
    // One line without '\n'; "<eof>" when the server closed, "<timeout>".
    std::string line() {
        std::string text;
        char c;
        for (;;) {
            const auto n = ::recv(fd_.get(), &c, 1, 0);
            if (n == 0)
                return text.empty() ? "<eof>" : text;
            if (n < 0)
                return "<timeout>";
            if (c == '\n')
                return text;
            text += c;
        }
    }

private:
    partlink::UniqueFd fd_;
    bool connected_ = false;
};

std::string ok_line(std::string_view request) {
    const auto answer = answer_request(request, kTestWork);
    return answer.substr(0, answer.size() - 1);
}

TEST(Loopback, ServeAndLoadCountRequests) {
    Server server;
    LoadOptions options;
    options.to = server.address();
    options.connections = 3;
    options.duration = 1.2;
    options.json = true;
    std::ostringstream out;
    const auto result = load(options, -1, out);
    const auto stats = server.stop();

    EXPECT_GT(result.series.total_served(), 50u);
    EXPECT_EQ(result.series.total_errors(), 0u);
    // The load stops with up to one answer per connection still in flight.
    EXPECT_GE(stats.served, result.series.total_served());
    EXPECT_LE(stats.served, result.series.total_served() + 3);
    EXPECT_EQ(stats.accepted, 3u);
    EXPECT_NEAR(result.elapsed, 1.2, 0.2);
    ASSERT_EQ(result.series.seconds().size(), 1u);
    const auto line = nlohmann::json::parse(out.str());
    EXPECT_EQ(line["served"].get<std::uint64_t>(), result.series.seconds()[0].served);
    EXPECT_EQ(line["errors"], 0);
    EXPECT_GT(line["time"].get<double>(), 1.7e9);
}

TEST(Loopback, RateLimitsRequests) {
    Server server;
    LoadOptions options;
    options.to = server.address();
    options.connections = 2;
    options.duration = 1.0;
    options.rate = 50;
    std::ostringstream out;
    const auto result = load(options, -1, out);
    EXPECT_GE(result.series.total_served(), 40u);
    EXPECT_LE(result.series.total_served(), 60u);
    EXPECT_EQ(out.str(),
              "[1] served " + std::to_string(result.series.seconds()[0].served) + " errors 0\n");
}

TEST(Loopback, ServerSurvivesGarbageAndAnswersTheNextClient) {
    Server server;
    {
        RawClient c(server.port());
        ASSERT_TRUE(c.connected());
        c.send(std::string("\x01\x02\xff garbage\n", 12));
        EXPECT_EQ(c.line(), "ERR bad-request");
        c.send("\n");
        EXPECT_EQ(c.line(), "ERR empty");
        c.send("hello\r\nworld\n"); // pipelined: answered in order
        EXPECT_EQ(c.line(), ok_line("hello"));
        EXPECT_EQ(c.line(), ok_line("world"));
        c.send(std::string(kMaxRequest + 10, 'x'));
        EXPECT_EQ(c.line(), "ERR too-long");
        EXPECT_EQ(c.line(), "<eof>");
    }
    {
        RawClient c(server.port());
        c.send("half a requ"); // and hang up
    }
    RawClient c(server.port());
    c.send("still there?\n");
    EXPECT_EQ(c.line(), ok_line("still there?"));
    const auto stats = server.stop();
    EXPECT_EQ(stats.served, 3u);
    EXPECT_EQ(stats.rejected, 2u);
    EXPECT_EQ(stats.overlong, 1u);
    EXPECT_EQ(stats.accepted, 3u);
}

TEST(Loopback, ConnectionsBeyondTheLimitAreTurnedAway) {
    Server server(1);
    RawClient first(server.port());
    first.send("one\n");
    EXPECT_EQ(first.line(), ok_line("one"));
    RawClient second(server.port());
    EXPECT_EQ(second.line(), "ERR busy");
    EXPECT_EQ(second.line(), "<eof>");
    first.send("two\n");
    EXPECT_EQ(first.line(), ok_line("two"));
    EXPECT_EQ(server.stop().busy, 1u);
}

TEST(Loopback, LoadCountsConnectionErrorsAndRetries) {
    // A port that nobody listens on: bind one, learn its number, close it.
    std::uint16_t port = 0;
    {
        auto probe = TcpListener::bind(parse_listen("127.0.0.1:0"));
        port = probe.local().port;
    }
    LoadOptions options;
    options.to = "127.0.0.1:" + std::to_string(port);
    options.connections = 2;
    options.duration = 0.5;
    std::ostringstream out;
    const auto result = load(options, -1, out);
    EXPECT_EQ(result.series.total_served(), 0u);
    // Backoff 0.05, 0.1, 0.2 s: 3 or 4 refusals per connection in 0.5 s,
    // not thousands.
    EXPECT_GE(result.series.total_errors(), 4u);
    EXPECT_LE(result.series.total_errors(), 10u);
}

TEST(Loopback, BadLoadOptionsAreUsageErrors) {
    LoadOptions options;
    options.to = "127.0.0.1:1";
    options.connections = 0;
    std::ostringstream out;
    EXPECT_THROW(load(options, -1, out), UsageError);
    options.connections = 1;
    options.to = "localhost:1";
    EXPECT_THROW(load(options, -1, out), UsageError);
}

} // namespace
} // namespace plwlm
