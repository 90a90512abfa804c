// One owning handle for every kind of integer handle (an fd, a GLib source
// id): released exactly once, on every early return and exception.  A
// kind is a Traits type with `Value`, `kNone` and `close(Value)`.
#pragma once

#include <utility>

namespace partlink {

template <typename Traits>
class UniqueHandle {
public:
    using Value = typename Traits::Value;

    UniqueHandle() noexcept = default;
    explicit UniqueHandle(Value value) noexcept
        : value_(value) {}
    UniqueHandle(UniqueHandle&& other) noexcept
        : value_(other.release()) {}
    UniqueHandle& operator=(UniqueHandle&& other) noexcept {
        if (this != &other)
            reset(other.release());
        return *this;
    }
    UniqueHandle(const UniqueHandle&) = delete;
    UniqueHandle& operator=(const UniqueHandle&) = delete;
    ~UniqueHandle() { reset(); }

    Value get() const noexcept { return value_; }
    bool valid() const noexcept { return value_ != Traits::kNone; }
    explicit operator bool() const noexcept { return valid(); }

    Value release() noexcept { return std::exchange(value_, Traits::kNone); }
    void reset(Value value = Traits::kNone) noexcept {
        if (value_ != Traits::kNone)
            Traits::close(value_);
        value_ = value;
    }

private:
    Value value_ = Traits::kNone;
};

} // namespace partlink
