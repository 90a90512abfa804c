// A partition's virtio-balloon, driven over the QMP monitor its QEMU keeps
// for partlinkd (`-mon`, RUN/vmN.hv.qmp): `balloon` sets the target,
// `query-balloon` reads the guest's RAM back.  One connection per
// directive: the launcher's own QMP monitor is a different socket, so the
// two never wait for each other.
#pragma once

#include <chrono>
#include <filesystem>

#include "capacity/memory_enforcer.hpp"
#include "capacity/run_config.hpp"
#include "qmp.hpp"

namespace partlink::daemon {

class QmpBalloon : public capacity::Balloon {
public:
    explicit QmpBalloon(QmpClient client)
        : client_(std::move(client)) {}

    void set_target(std::uint64_t bytes) override;
    std::uint64_t actual() override;

private:
    QmpClient client_;
};

// Opens the balloon of a partition of `balloons`; throws Error for any other.
capacity::BalloonOpener
qmp_balloon_opener(std::map<std::string, capacity::BalloonConfig, std::less<>> balloons,
                   std::chrono::milliseconds timeout = std::chrono::seconds(1));

} // namespace partlink::daemon
