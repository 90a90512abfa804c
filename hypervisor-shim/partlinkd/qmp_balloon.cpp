#include "qmp_balloon.hpp"

namespace partlink::daemon {

void QmpBalloon::set_target(std::uint64_t bytes) {
    client_.execute("balloon", {{"value", bytes}});
}

std::uint64_t QmpBalloon::actual() {
    const auto reply = client_.execute("query-balloon");
    const auto it = reply.find("actual");
    if (it == reply.end() || !it->is_number_unsigned())
        throw QmpError("unexpected query-balloon reply: " + reply.dump());
    return it->get<std::uint64_t>();
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
