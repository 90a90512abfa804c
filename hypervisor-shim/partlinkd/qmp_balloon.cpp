#include "qmp_balloon.hpp"

namespace partlink::daemon {

void QmpBalloon::set_target(std::uint64_t bytes) {
    client_.execute("balloon", {{"value", bytes}});
}

std::uint64_t QmpBalloon::actual() {
    return client_.query_balloon();
}

capacity::BalloonOpener
qmp_balloon_opener(std::map<std::string, capacity::BalloonConfig, std::less<>> balloons,
                   std::chrono::milliseconds timeout) {
    return [balloons = std::move(balloons),
            timeout](const std::string& partition) -> std::unique_ptr<capacity::Balloon> {
        const auto it = balloons.find(partition);
        if (it == balloons.end())
            throw Error(partition + " has no balloon in the capacity configuration");
        return std::make_unique<QmpBalloon>(QmpClient::connect(it->second.qmp, timeout));
    };
}

} // namespace partlink::daemon
