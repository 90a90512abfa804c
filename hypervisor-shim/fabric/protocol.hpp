// The fabric protocol (ABI part 3) on a unix stream socket: encoding the
// daemon's messages, reading framed messages with their fds (SCM_RIGHTS,
// which travel with a message's first byte), and a send queue for
// non-blocking sockets.  Validation of HELLO lives in hello.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "partlink/partlink_abi.h"
#include "unique_fd.hpp"

namespace partlink::fabric {

// The peer broke the protocol; what() is the reason sent in REFUSE.
class ProtocolError : public Error {
public:
    using Error::Error;
};

// A message to send.  The fds are borrowed: they must stay open until the
// message is queued (OutQueue duplicates them) or sent.
struct Message {
    std::uint32_t type = 0;
    std::vector<std::uint8_t> payload;
    std::vector<int> fds;
};

// A message received, owning the fds that came with it.
struct Received {
    std::uint32_t type = 0;
    std::vector<std::uint8_t> payload;
    std::vector<UniqueFd> fds;
};

// "HELLO", "PEER_UP", ... or "type 42".
std::string message_name(std::uint32_t type);

Message make_hello(const partlink_msg_port& port, std::span<const int> fds);
Message make_welcome(const partlink_msg_welcome& welcome, int segment_fd);
// The reason is cut to fit partlink_msg_refuse, always NUL-terminated.
Message make_refuse(std::string_view reason);
Message make_peer_up(const partlink_msg_port& port, std::span<const int> fds);
Message make_peer_down(std::uint32_t port, std::uint32_t epoch);
Message make_mbox_answer(std::uint32_t seq, const partlink_mbox_answer& answer);
Message make_segment(const partlink_msg_segment& segment, int memfd);
Message make_segment_gone(std::uint32_t id);
// `doorbell` is the peer's eventfd, or -1 (sent without) when shared is 0.
Message make_seg_peer(std::uint32_t port, std::uint32_t epoch, std::uint64_t shared, int doorbell);

// A fixed-size payload, for the daemon's messages (a device's tests and the
// fake devices of our tests use it).  Throws ProtocolError on a size mismatch.
template <typename T>
T payload_as(const Received& message) {
    if (message.payload.size() != sizeof(T))
        throw ProtocolError(message_name(message.type) + " payload of " +
                            std::to_string(message.payload.size()) + " bytes, expected " +
                            std::to_string(sizeof(T)));
    T value;
    std::memcpy(&value, message.payload.data(), sizeof(T));
    return value;
}
// REFUSE's reason as text.
std::string refuse_reason(const Received& message);

// Reads one framed message at a time from a stream socket, blocking or not.
// Each recvmsg asks for at most the rest of the current message, so fds are
// always attributed to the message whose first byte they came with.
class MessageReader {
public:
    enum class Status { message, again, eof };

    // Reads what is available.  `message` is filled when the status is
    // `message`.  Throws ProtocolError for a malformed stream (oversized
    // message, fds in the middle of a message, too many fds, EOF inside a
    // message) and Error for a socket error.
    Status read(int fd, Received& message);

    // Bytes of an incomplete message held.
    std::size_t pending() const { return have_ + payload_have_; }

private:
    void reset();

    partlink_msg header_{};
    std::size_t have_ = 0; // header bytes
    std::vector<std::uint8_t> payload_;
    std::size_t payload_have_ = 0;
    std::vector<UniqueFd> fds_;
};

// Messages waiting to be sent on a non-blocking socket, with duplicates of
// their fds.  Partial sends resume where they stopped; the fds go with the
// first byte of their message.
class OutQueue {
public:
    void push(const Message& message);
    // Sends as much as the socket takes; true when the queue is empty.
    // Throws Error when the socket fails (the peer went away).
    bool flush(int fd);
    bool empty() const { return queue_.empty(); }
    std::size_t size() const { return queue_.size(); }

private:
    struct Pending {
        std::vector<std::uint8_t> bytes; // header and payload
        std::vector<UniqueFd> fds;
        std::size_t sent = 0;
    };
    std::deque<Pending> queue_;
};

// Blocking helpers, for simple clients (fake devices in tests).
void send_message(int fd, const Message& message);
// Waits at most timeout_ms (-1: forever); throws Error on EOF or timeout.
Received receive_message(int fd, int timeout_ms = -1);

} // namespace partlink::fabric
