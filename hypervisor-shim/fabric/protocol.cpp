#include "protocol.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace partlink::fabric {

namespace {

template <typename T>
Message make(std::uint32_t type, const T& payload, std::vector<int> fds = {}) {
    Message message;
    message.type = type;
    message.payload.resize(sizeof(T));
    std::memcpy(message.payload.data(), &payload, sizeof(T));
    message.fds = std::move(fds);
    return message;
}

std::vector<std::uint8_t> encode(const Message& message) {
    partlink_msg header{message.type, static_cast<__u32>(message.payload.size())};
    std::vector<std::uint8_t> bytes(sizeof(header) + message.payload.size());
    std::memcpy(bytes.data(), &header, sizeof(header));
    std::copy(message.payload.begin(), message.payload.end(), bytes.begin() + sizeof(header));
    return bytes;
}

// sendmsg of bytes[sent..], with fds if sent is 0.  Returns bytes sent, or
// -1 with errno.
ssize_t send_part(int fd, const std::vector<std::uint8_t>& bytes, std::size_t sent,
                  std::span<const int> fds, int flags) {
    iovec iov{const_cast<std::uint8_t*>(bytes.data()) + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * PARTLINK_MAX_FDS)];
    if (sent == 0 && !fds.empty()) {
        if (fds.size() > PARTLINK_MAX_FDS)
            throw Error("cannot send " + std::to_string(fds.size()) + " fds in one message");
        std::memset(control, 0, sizeof(control));
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    do
        n = ::sendmsg(fd, &msg, flags | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

} // namespace

std::string message_name(std::uint32_t type) {
    switch (type) {
    case PARTLINK_MSG_HELLO:
        return "HELLO";
    case PARTLINK_MSG_WELCOME:
        return "WELCOME";
    case PARTLINK_MSG_REFUSE:
        return "REFUSE";
    case PARTLINK_MSG_PEER_UP:
        return "PEER_UP";
    case PARTLINK_MSG_PEER_DOWN:
        return "PEER_DOWN";
    case PARTLINK_MSG_MBOX_REQUEST:
        return "MBOX_REQUEST";
    case PARTLINK_MSG_MBOX_ANSWER:
        return "MBOX_ANSWER";
    case PARTLINK_MSG_SEGMENT:
        return "SEGMENT";
    case PARTLINK_MSG_SEGMENT_GONE:
        return "SEGMENT_GONE";
    case PARTLINK_MSG_SEG_PEER:
        return "SEG_PEER";
    default:
        return "message type " + std::to_string(type);
    }
}

Message make_hello(const partlink_msg_port& port, std::span<const int> fds) {
    return make(PARTLINK_MSG_HELLO, port, std::vector<int>(fds.begin(), fds.end()));
}

Message make_welcome(const partlink_msg_welcome& welcome, int segment_fd) {
    return make(PARTLINK_MSG_WELCOME, welcome, {segment_fd});
}

Message make_refuse(std::string_view reason) {
    partlink_msg_refuse refuse{};
    std::size_t n = std::min(reason.size(), sizeof(refuse.reason) - 1);
    std::memcpy(refuse.reason, reason.data(), n);
    return make(PARTLINK_MSG_REFUSE, refuse);
}

Message make_peer_up(const partlink_msg_port& port, std::span<const int> fds) {
    return make(PARTLINK_MSG_PEER_UP, port, std::vector<int>(fds.begin(), fds.end()));
}

Message make_peer_down(std::uint32_t port, std::uint32_t epoch) {
    return make(PARTLINK_MSG_PEER_DOWN, partlink_msg_peer_down{port, epoch});
}

Message make_mbox_answer(std::uint32_t seq, const partlink_mbox_answer& answer) {
    partlink_msg_mbox_answer message{};
    message.seq = seq;
    message.answer = answer;
    return make(PARTLINK_MSG_MBOX_ANSWER, message);
}

Message make_segment(const partlink_msg_segment& segment, int memfd) {
    return make(PARTLINK_MSG_SEGMENT, segment, {memfd});
}

Message make_segment_gone(std::uint32_t id) {
    return make(PARTLINK_MSG_SEGMENT_GONE, partlink_msg_segment_gone{id, 0});
}

Message make_seg_peer(std::uint32_t port, std::uint32_t epoch, std::uint64_t shared, int doorbell) {
    const partlink_msg_seg_peer peer{port, epoch, shared};
    if (shared == 0)
        return make(PARTLINK_MSG_SEG_PEER, peer);
    return make(PARTLINK_MSG_SEG_PEER, peer, {doorbell});
}

std::string refuse_reason(const Received& message) {
    auto refuse = payload_as<partlink_msg_refuse>(message);
    return std::string(refuse.reason, strnlen(refuse.reason, sizeof(refuse.reason)));
}

void MessageReader::reset() {
    have_ = 0;
    payload_.clear();
    payload_have_ = 0;
    fds_.clear();
}

MessageReader::Status MessageReader::read(int fd, Received& message) {
    for (;;) {
        bool in_header = have_ < sizeof(header_);
        if (!in_header && payload_have_ == header_.len) {
            message.type = header_.type;
            message.payload = std::move(payload_);
            message.fds = std::move(fds_);
            payload_ = {};
            fds_.clear();
            reset();
            return Status::message;
        }
        std::uint8_t* to = in_header ? reinterpret_cast<std::uint8_t*>(&header_) + have_
                                     : payload_.data() + payload_have_;
        std::size_t want = in_header ? sizeof(header_) - have_ : header_.len - payload_have_;

        iovec iov{to, want};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * PARTLINK_MAX_FDS)];
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return Status::again;
            // A peer that closed with our messages unread: just a close.
            if (errno != ECONNRESET)
                throw_errno("cannot read from the socket");
            n = 0;
            msg.msg_controllen = 0;
        }

        // Own every fd that arrived before judging anything.
        std::vector<UniqueFd> arrived;
        for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
                continue;
            std::size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < count; ++i) {
                int received;
                std::memcpy(&received, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
                arrived.emplace_back(received);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC)
            throw ProtocolError("more than " + std::to_string(PARTLINK_MAX_FDS) +
                                " fds with one message");
        if (!arrived.empty()) {
            if (pending() != 0)
                throw ProtocolError("fds arrived in the middle of a message; they must come "
                                    "with its first byte");
            if (fds_.size() + arrived.size() > PARTLINK_MAX_FDS)
                throw ProtocolError("more than " + std::to_string(PARTLINK_MAX_FDS) +
                                    " fds with one message");
            for (auto& received : arrived)
                fds_.push_back(std::move(received));
        }
        if (n == 0) {
            if (pending() != 0)
                throw ProtocolError("connection closed in the middle of a message (" +
                                    std::to_string(pending()) + " bytes received)");
            return Status::eof;
        }

        if (in_header) {
            have_ += static_cast<std::size_t>(n);
            if (have_ == sizeof(header_)) {
                if (header_.len > PARTLINK_MSG_MAX_LEN)
                    throw ProtocolError(message_name(header_.type) + " of " +
                                        std::to_string(header_.len) + " bytes, at most " +
                                        std::to_string(PARTLINK_MSG_MAX_LEN) + " allowed");
                payload_.assign(header_.len, 0);
            }
        } else {
            payload_have_ += static_cast<std::size_t>(n);
        }
    }
}

void OutQueue::push(const Message& message) {
    Pending pending;
    pending.bytes = encode(message);
    for (int fd : message.fds) {
        UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
        if (!copy)
            throw_errno("cannot duplicate an fd to send");
        pending.fds.push_back(std::move(copy));
    }
    queue_.push_back(std::move(pending));
}

bool OutQueue::flush(int fd) {
    while (!queue_.empty()) {
        Pending& front = queue_.front();
        std::vector<int> fds;
        for (const auto& owned : front.fds)
            fds.push_back(owned.get());
        ssize_t n = send_part(fd, front.bytes, front.sent, fds, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return false;
            throw_errno("cannot send");
        }
        front.sent += static_cast<std::size_t>(n);
        if (front.sent > 0)
            front.fds.clear(); // they went with the first byte
        if (front.sent == front.bytes.size())
            queue_.pop_front();
    }
    return true;
}

void send_message(int fd, const Message& message) {
    auto bytes = encode(message);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        ssize_t n = send_part(fd, bytes, sent, message.fds, 0);
        if (n < 0)
            throw_errno("cannot send " + message_name(message.type));
        sent += static_cast<std::size_t>(n);
    }
}

Received receive_message(int fd, int timeout_ms) {
    MessageReader reader;
    Received message;
    for (;;) {
        switch (reader.read(fd, message)) {
        case MessageReader::Status::message:
            return message;
        case MessageReader::Status::eof:
            throw Error("connection closed");
        case MessageReader::Status::again: {
            pollfd pfd{fd, POLLIN, 0};
            int n = ::poll(&pfd, 1, timeout_ms);
            if (n < 0 && errno != EINTR)
                throw_errno("poll");
            if (n == 0)
                throw Error("no message within " + std::to_string(timeout_ms) + " ms");
            break;
        }
        }
    }
}

} // namespace partlink::fabric
