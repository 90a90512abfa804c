// What a reload changes, as the operator reads it before it is applied.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "table.hpp"

using namespace partlink::segments;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace {

Table table(std::string_view segments) {
    return Table::parse(R"({"segments": [)" + std::string(segments) + "]}", "t", std::nullopt);
}

std::vector<std::string> described(const std::vector<Change>& changes) {
    std::vector<std::string> lines;
    for (const auto& change : changes)
        lines.push_back(change.description);
    return lines;
}

const char* kPipe = R"({"name": "pipe0", "size": "16M", "partitions": {
    "vm1": {"uid": 1000, "gid": 1000, "mode": "0660"},
    "vm2": {"access": "ro"}}})";

TEST(Diff, NothingChanged) {
    EXPECT_THAT(diff(table(kPipe), table(kPipe)), IsEmpty());
    EXPECT_THAT(diff(Table(), Table()), IsEmpty());
}

TEST(Diff, Added) {
    auto changes = diff(Table(), table(kPipe));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].kind, Change::Kind::Added);
    EXPECT_EQ(changes[0].segment, "pipe0");
    EXPECT_EQ(changes[0].partition, "");
    EXPECT_EQ(changes[0].description,
              "+ pipe0 (16 MiB) for vm1 rw 1000:1000 0660, vm2 ro 0:0 0600");
    EXPECT_THAT(described(diff(Table(), table(R"({"name": "lock", "size": 4096, "pinned": true,
                                                 "partitions": {"vm3": {}}})"))),
                ElementsAre("+ lock (4 KiB, pinned) for vm3 rw 0:0 0600"));
}

TEST(Diff, Removed) {
    auto changes = diff(table(std::string(kPipe) + R"(, {"name": "old0", "size": 4096,
                                                        "partitions": {"vm1": {}}})"),
                        table(kPipe));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0], (Change{Change::Kind::Removed, "old0", "", "- old0"}));
}

TEST(Diff, ResizedIsANewSegment) {
    auto changes = diff(table(kPipe), table(R"({"name": "pipe0", "size": "32M", "pinned": true,
                                               "partitions": {"vm1": {}}})"));
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(changes[0].kind, Change::Kind::Resized);
    EXPECT_EQ(changes[0].description, "~ pipe0: 16 MiB -> 32 MiB, pinned, a new segment (contents "
                                      "not kept) for vm1 rw 0:0 0600");
}

TEST(Diff, Pinned) {
    auto pinned = table(R"({"name": "pipe0", "size": "16M", "pinned": true, "partitions": {
        "vm1": {"uid": 1000, "gid": 1000, "mode": "0660"}, "vm2": {"access": "ro"}}})");
    EXPECT_THAT(diff(table(kPipe), pinned), ElementsAre(Change{Change::Kind::Pinned, "pipe0", "",
                                                               "~ pipe0: pinned false -> true"}));
    EXPECT_THAT(described(diff(pinned, table(kPipe))),
                ElementsAre("~ pipe0: pinned true -> false"));
}

TEST(Diff, AccessGrantedRevokedChanged) {
    auto next = table(R"({"name": "pipe0", "size": "16M", "partitions": {
        "vm0": {"mode": "0640"},
        "vm2": {"uid": 1000, "gid": 5, "mode": "0660"},
        "vm3": {"access": "ro", "uid": 7}}})");
    auto changes = diff(table(kPipe), next);
    EXPECT_THAT(described(changes), ElementsAre("~ pipe0: + vm0 rw 0:0 0640", "~ pipe0: - vm1",
                                                "~ pipe0: vm2 ro -> rw, uid 0 -> 1000, gid 0 -> "
                                                "5, mode 0600 -> 0660",
                                                "~ pipe0: + vm3 ro 7:0 0600"));
    ASSERT_EQ(changes.size(), 4u);
    EXPECT_EQ(changes[0].kind, Change::Kind::Granted);
    EXPECT_EQ(changes[0].partition, "vm0");
    EXPECT_EQ(changes[1].kind, Change::Kind::Revoked);
    EXPECT_EQ(changes[1].partition, "vm1");
    EXPECT_EQ(changes[2].kind, Change::Kind::Access);
    EXPECT_EQ(changes[2].partition, "vm2");
    EXPECT_EQ(changes[3].kind, Change::Kind::Granted);
}

TEST(Diff, OneFieldAtATime) {
    auto one = [](std::string_view access) {
        return table(R"({"name": "s", "size": 4096, "partitions": {"vm2": )" + std::string(access) +
                     "}}");
    };
    EXPECT_THAT(described(diff(one("{}"), one(R"({"access": "ro"})"))),
                ElementsAre("~ s: vm2 rw -> ro"));
    EXPECT_THAT(described(diff(one(R"({"access": "ro"})"), one("{}"))),
                ElementsAre("~ s: vm2 ro -> rw"));
    EXPECT_THAT(described(diff(one("{}"), one(R"({"uid": 1})"))),
                ElementsAre("~ s: vm2 uid 0 -> 1"));
    EXPECT_THAT(described(diff(one("{}"), one(R"({"gid": 2})"))),
                ElementsAre("~ s: vm2 gid 0 -> 2"));
    EXPECT_THAT(described(diff(one("{}"), one(R"({"mode": "644"})"))),
                ElementsAre("~ s: vm2 mode 0600 -> 0644"));
    // Spelled differently, the same.
    EXPECT_THAT(diff(one("{}"), one(R"({"mode": "600", "access": "rw", "uid": 0})")), IsEmpty());
}

TEST(Diff, Order) {
    // Removed first, in the old order; then the new table's order.
    auto old = table(R"({"name": "b", "size": 4096, "partitions": {"vm1": {}}},
                        {"name": "z", "size": 4096, "partitions": {"vm1": {}}},
                        {"name": "a", "size": 4096, "partitions": {"vm1": {}}},
                        {"name": "keep", "size": 4096, "partitions": {"vm1": {}}})");
    auto next = table(R"({"name": "new", "size": 8192, "partitions": {"vm1": {}}},
                         {"name": "keep", "size": 4096, "pinned": true, "partitions": {"vm2": {}}},
                         {"name": "a", "size": 8192, "partitions": {"vm1": {}}})");
    EXPECT_THAT(described(diff(old, next)),
                ElementsAre("- b", "- z", "+ new (8 KiB) for vm1 rw 0:0 0600",
                            "~ keep: pinned false -> true", "~ keep: - vm1",
                            "~ keep: + vm2 rw 0:0 0600",
                            "~ a: 4 KiB -> 8 KiB, a new segment (contents not kept) for vm1 rw "
                            "0:0 0600"));
}

} // namespace
