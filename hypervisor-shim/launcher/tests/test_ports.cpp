#include <set>

#include <gtest/gtest.h>

#include "error.hpp"
#include "host/ports.hpp"

using namespace partlink;

TEST(Ports, AnyGivesDistinctFreePorts) {
    std::vector<PortReservation> held;
    std::set<std::uint16_t> ports;
    for (int i = 0; i < 8; ++i) {
        held.push_back(PortReservation::any());
        ports.insert(held.back().port());
    }
    EXPECT_EQ(ports.size(), 8u);
    EXPECT_FALSE(port_is_free(held.front().port()));
    std::uint16_t first = held.front().port();
    held.front().release();
    EXPECT_TRUE(port_is_free(first));
}

TEST(Ports, ExactPortInUseSaysWhatToDo) {
    PortReservation taken = PortReservation::any();
    try {
        PortReservation::exact(taken.port());
        FAIL() << "port " << taken.port() << " should be in use";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "port " + std::to_string(taken.port()) +
                      " on 127.0.0.1 is in use; pick another --ssh-port or omit it to choose "
                      "free ports");
        EXPECT_EQ(e.exit_code(), kExitRuntime);
    }
    std::uint16_t port = taken.port();
    taken.release();
    EXPECT_EQ(PortReservation::exact(port).port(), port);
}
