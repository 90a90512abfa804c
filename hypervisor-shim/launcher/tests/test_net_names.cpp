#include <set>

#include <gtest/gtest.h>

#include "host/net_setup.hpp"

using namespace partlink;

TEST(IfNames, StableShortAndDistinct) {
    IfNames a = IfNames::for_run_dir("/work/main/build/run");
    IfNames again = IfNames::for_run_dir("/work/main/build/run");
    IfNames b = IfNames::for_run_dir("/work/main/build/run2");
    EXPECT_EQ(a.bridge(), again.bridge());
    EXPECT_NE(a.bridge(), b.bridge());
    EXPECT_EQ(a.hash().size(), 6u);
    EXPECT_EQ(a.hash().find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(a.bridge(), "plbr" + a.hash());
    EXPECT_EQ(a.tap(3), "plt" + a.hash() + "v3");
    EXPECT_LE(a.bridge().size(), kMaxIfnameLength);
    EXPECT_LE(a.tap(16).size(), kMaxIfnameLength);
}

TEST(IfNames, FewCollisionsAcrossManyRunDirs) {
    std::set<std::string> seen;
    for (int i = 0; i < 2000; ++i)
        seen.insert(run_dir_hash("/tmp/partlink-run-" + std::to_string(i)));
    EXPECT_GE(seen.size(), 1990u);
}

TEST(IfNames, RecognizesOnlyItsOwn) {
    IfNames a = IfNames::for_run_dir("/a");
    IfNames b = IfNames::for_run_dir("/b");
    EXPECT_TRUE(a.is_ours(a.bridge()));
    EXPECT_TRUE(a.is_ours(a.tap(1)));
    EXPECT_TRUE(a.is_ours(a.tap(16)));
    EXPECT_FALSE(a.is_ours(b.bridge()));
    EXPECT_FALSE(a.is_ours(b.tap(1)));
    EXPECT_FALSE(a.is_ours("plt" + a.hash() + "v"));
    EXPECT_FALSE(a.is_ours("plt" + a.hash() + "vx"));
    EXPECT_FALSE(a.is_ours("eth0"));
    EXPECT_FALSE(a.is_ours("lo"));
}
