// The host tests' segment: a memfd mapped between two PROT_NONE guard
// pages (an access outside the segment faults at once), shared with forked
// children; and fake doorbells: an eventfd per port, with ring counters in
// shared memory.
#pragma once

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <new>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <thread>
#include <time.h>
#include <unistd.h>

#include "plseg.h"
#include "plseg_layout.h"

namespace plseg_test {

inline constexpr int kPorts = 8;

// Shared between the test and its children: counters and results.
struct Shared {
    std::atomic<uint64_t> rings[kPorts];
    std::atomic<uint64_t> value[16];
    std::atomic<int64_t> time_ms[8];
};

class Segment {
public:
    explicit Segment(size_t size)
        : size_(size) {
        fd_ = memfd_create("plseg-test", MFD_CLOEXEC);
        if (fd_ < 0 || ftruncate(fd_, static_cast<off_t>(size)) < 0)
            throw std::runtime_error("memfd");
        size_t page = 4096;
        reserved_ = size + 2 * page;
        void* base = mmap(nullptr, reserved_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            throw std::runtime_error("reserve");
        base_ = static_cast<unsigned char*>(base);
        void* m = mmap(base_ + page, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd_, 0);
        if (m == MAP_FAILED)
            throw std::runtime_error("map");
        mem_ = static_cast<unsigned char*>(m);
    }
    ~Segment() {
        munmap(base_, reserved_);
        close(fd_);
    }
    Segment(const Segment&) = delete;
    Segment& operator=(const Segment&) = delete;

    unsigned char* mem() const { return mem_; }
    size_t size() const { return size_; }
    int fd() const { return fd_; }
    plseg_header* hdr() const { return reinterpret_cast<plseg_header*>(mem_); }

private:
    size_t size_;
    size_t reserved_ = 0;
    int fd_ = -1;
    unsigned char* base_ = nullptr;
    unsigned char* mem_ = nullptr;
};

// One eventfd per port; ringing a port counts in Shared::rings.
class Doorbells {
public:
    Doorbells() {
        void* m = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
        if (m == MAP_FAILED)
            throw std::runtime_error("shared");
        shared_ = new (m) Shared();
        for (int& fd : efd_) {
            fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            if (fd < 0)
                throw std::runtime_error("eventfd");
        }
    }
    ~Doorbells() {
        for (int fd : efd_)
            close(fd);
        munmap(shared_, sizeof(Shared));
    }
    Doorbells(const Doorbells&) = delete;
    Doorbells& operator=(const Doorbells&) = delete;

    Shared& shared() { return *shared_; }
    uint64_t total_rings() const {
        uint64_t n = 0;
        for (auto& r : shared_->rings)
            n += r.load();
        return n;
    }

    struct Ctx {
        Doorbells* bells;
        uint32_t port;
    };

    static int wait(void* ctx, int timeout_ms) {
        auto* c = static_cast<Ctx*>(ctx);
        pollfd pfd{c->bells->efd_[c->port], POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0)
            return -errno;
        if (r == 0)
            return 0;
        uint64_t v;
        if (read(pfd.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            return -errno;
        return 1;
    }

    static int ring(void* ctx, uint32_t port) {
        auto* c = static_cast<Ctx*>(ctx);
        if (port >= kPorts)
            return -EINVAL;
        c->bells->shared_->rings[port]++;
        uint64_t one = 1;
        if (write(c->bells->efd_[port], &one, sizeof(one)) < 0)
            return -errno;
        return 0;
    }

    static constexpr plseg_ops ops{&Doorbells::wait, &Doorbells::ring};

private:
    Shared* shared_ = nullptr;
    int efd_[kPorts];
};

// A segment handle for this process on port `port`.
class Handle {
public:
    Handle(Segment& seg, Doorbells& bells, uint32_t port)
        : ctx_{&bells, port} {
        int err = plseg_attach_mem(seg.mem(), seg.size(), port, &Doorbells::ops, &ctx_, &seg_);
        if (err)
            throw std::runtime_error("plseg_attach_mem");
    }
    ~Handle() { plseg_close(seg_); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;

    plseg* get() const { return seg_; }
    operator plseg*() const { return seg_; }

private:
    Doorbells::Ctx ctx_;
    plseg* seg_ = nullptr;
};

inline int64_t now_ms() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

inline int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Runs fn in a child process; its return value is the exit status.
inline pid_t fork_child(const std::function<int()>& fn) {
    pid_t pid = fork();
    if (pid == 0) {
        int st = 99;
        try {
            st = fn();
        } catch (...) {
            st = 98;
        }
        _exit(st);
    }
    return pid;
}

// The child's exit status, -signal if killed, or -1000 (and SIGKILL) if it
// did not end within timeout_ms.
inline int wait_child(pid_t pid, int timeout_ms = 30000) {
    int64_t end = now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0)
            return -2000;
        if (now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1000;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return -WTERMSIG(status);
}

// Waits until pred() or timeout_ms; returns pred().
inline bool eventually(const std::function<bool()>& pred, int timeout_ms = 5000) {
    int64_t end = now_ms() + timeout_ms;
    while (!pred() && now_ms() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return pred();
}

// A deterministic byte stream: xorshift64*.
class Stream {
public:
    explicit Stream(uint64_t seed)
        : s_(seed ? seed : 1) {}
    void fill(unsigned char* p, size_t n) {
        for (size_t i = 0; i < n; i++) {
            if (left_ == 0) {
                s_ ^= s_ >> 12;
                s_ ^= s_ << 25;
                s_ ^= s_ >> 27;
                word_ = s_ * 0x2545F4914F6CDD1DULL;
                left_ = 8;
            }
            p[i] = static_cast<unsigned char>(word_);
            word_ >>= 8;
            left_--;
        }
    }

private:
    uint64_t s_;
    uint64_t word_ = 0;
    int left_ = 0;
};

// FNV-1a, 64-bit: the checksum both ends of a transfer compute.
class Fnv {
public:
    void add(const unsigned char* p, size_t n) {
        for (size_t i = 0; i < n; i++) {
            h_ ^= p[i];
            h_ *= 0x100000001b3ULL;
        }
    }
    uint64_t value() const { return h_; }

private:
    uint64_t h_ = 0xcbf29ce484222325ULL;
};

} // namespace plseg_test
