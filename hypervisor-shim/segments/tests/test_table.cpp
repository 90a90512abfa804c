// segments.json: defaults, sizes, limits, and every error's exact message.
#include <cstdlib>
#include <fstream>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "error.hpp"
#include "table.hpp"

using namespace partlink;
using namespace partlink::segments;
using ::testing::HasSubstr;

namespace {

const KnownPartitions kFabric = std::set<std::string, std::less<>>{"vm1", "vm2"};

std::string error_of(std::string_view text, const KnownPartitions& known = kFabric) {
    try {
        Table::parse(text, "segments.json", known);
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

// One segment "pipe0" whose fields are `fields` (JSON members, comma-led).
std::string with(std::string_view fields) {
    return R"({"segments": [{"name": "pipe0")" + std::string(fields) + "}]}";
}

// pipe0, 1 MiB, for vm1 with `access` (a JSON object).
std::string with_access(std::string_view access) {
    return with(R"(, "size": "1M", "partitions": {"vm1": )" + std::string(access) + "}");
}

// pipe0 of `size` (JSON) for vm1.
std::string with_size(std::string_view size) {
    return with(R"(, "size": )" + std::string(size) + R"(, "partitions": {"vm1": {}})");
}

std::uint64_t size_of(std::string_view size) {
    return Table::parse(with_size(size), "t", kFabric).segments().at(0).size;
}

// `count` segments s0.. of `size` bytes, each for `partition`.
std::string many(std::size_t count, std::uint64_t size = 4096,
                 const std::string& partition = "vm1") {
    std::string text = R"({"segments": [)";
    for (std::size_t i = 0; i < count; ++i) {
        if (i)
            text += ", ";
        text += R"({"name": "s)" + std::to_string(i) + R"(", "size": )" + std::to_string(size) +
                R"(, "partitions": {")" + partition + R"(": {}}})";
    }
    return text + "]}";
}

TEST(Table, ParsesTheExample) {
    auto table = Table::parse(R"({"segments": [
        {"name": "pipe0", "size": "16M", "pinned": true,
         "partitions": {
           "vm1": {"uid": 1000, "gid": 1000, "mode": "0660", "access": "rw"},
           "vm2": {"uid": 0, "gid": 0, "mode": "0600", "access": "ro"}}}]})",
                              "segments.json", kFabric);
    EXPECT_EQ(table.origin(), "segments.json");
    ASSERT_EQ(table.segments().size(), 1u);
    const Segment& pipe = table.segments()[0];
    EXPECT_EQ(pipe.name, "pipe0");
    EXPECT_EQ(pipe.size, 16u << 20);
    EXPECT_TRUE(pipe.pinned);
    ASSERT_EQ(pipe.partitions.size(), 2u);
    EXPECT_EQ(pipe.partitions.at("vm1"), (Access{1000, 1000, 0660, false}));
    EXPECT_EQ(pipe.partitions.at("vm2"), (Access{0, 0, 0600, true}));
    EXPECT_EQ(table.find("pipe0"), &pipe);
    EXPECT_EQ(table.find("pipe1"), nullptr);
    EXPECT_EQ(pipe.access_of("vm2"), &pipe.partitions.at("vm2"));
    EXPECT_EQ(pipe.access_of("vm3"), nullptr);
    EXPECT_EQ(table.total_size(), 16u << 20);
}

TEST(Table, Defaults) {
    auto table = Table::parse(with_size("4096"), "t", kFabric);
    const Segment& pipe = table.segments().at(0);
    EXPECT_FALSE(pipe.pinned);
    EXPECT_EQ(pipe.partitions.at("vm1"), (Access{0, 0, 0600, false}));
    // Each field alone.
    EXPECT_EQ(
        Table::parse(with_access(R"({"uid": 7})"), "t", kFabric).segments()[0].partitions.at("vm1"),
        (Access{7, 0, 0600, false}));
    EXPECT_EQ(Table::parse(with_access(R"({"access": "ro"})"), "t", kFabric)
                  .segments()[0]
                  .partitions.at("vm1"),
              (Access{0, 0, 0600, true}));
    EXPECT_EQ(Table::parse(with_access(R"({"mode": "644"})"), "t", kFabric)
                  .segments()[0]
                  .partitions.at("vm1")
                  .mode,
              0644);
    EXPECT_EQ(Table::parse(with_access(R"({"uid": 4294967294, "gid": 4294967294})"), "t", kFabric)
                  .segments()[0]
                  .partitions.at("vm1"),
              (Access{4294967294u, 4294967294u, 0600, false}));
}

TEST(Table, EmptyTable) {
    auto table = Table::parse(R"({"segments": []})", "t", kFabric);
    EXPECT_TRUE(table.segments().empty());
    EXPECT_EQ(table, Table());
    EXPECT_EQ(table.total_size(), 0u);
}

TEST(Table, SizeSuffixes) {
    EXPECT_EQ(size_of("4096"), 4096u);
    EXPECT_EQ(size_of(R"("8192")"), 8192u);
    EXPECT_EQ(size_of(R"("4K")"), 4096u);
    EXPECT_EQ(size_of(R"("12k")"), 12288u);
    EXPECT_EQ(size_of(R"("16M")"), 16u << 20);
    EXPECT_EQ(size_of(R"("2m")"), 2u << 20);
    EXPECT_EQ(size_of(R"("1G")"), 1u << 30);
    EXPECT_EQ(size_of(R"("1g")"), 1u << 30);
    EXPECT_EQ(size_of(R"("0016M")"), 16u << 20);
    EXPECT_EQ(size_of(R"("1048576K")"), kMaxSegmentSize);
}

TEST(Table, Names) {
    auto ok = [](const std::string& name) {
        return Table::parse(R"({"segments": [{"name": ")" + name +
                                R"(", "size": 4096, "partitions": {"vm1": {}}}]})",
                            "t", kFabric)
            .segments()[0]
            .name;
    };
    EXPECT_EQ(ok("a"), "a");
    EXPECT_EQ(ok("Pipe_0.ring-a"), "Pipe_0.ring-a");
    EXPECT_EQ(ok("_x"), "_x");
    EXPECT_EQ(ok("0"), "0");
    EXPECT_EQ(ok(std::string(31, 'n')), std::string(31, 'n'));
}

TEST(Table, AnyPartitionNameWithoutAFabric) {
    auto table = Table::parse(
        R"({"segments": [{"name": "p", "size": 4096, "partitions": {"a-name_of-15chr": {}, "X": {}}}]})",
        "t", std::nullopt);
    EXPECT_EQ(table.segments()[0].partitions.size(), 2u);
}

TEST(Table, Limits) {
    // 64 segments, 32 of them for a partition, 1 GiB in all for a partition.
    std::string text = R"({"segments": [)";
    for (int i = 0; i < 64; ++i) {
        if (i)
            text += ", ";
        text += R"({"name": "s)" + std::to_string(i) + R"(", "size": "32M", "partitions": {")" +
                (i < 32 ? "vm1" : "vm2") + R"(": {}}})";
    }
    text += "]}";
    auto table = Table::parse(text, "t", kFabric);
    EXPECT_EQ(table.segments().size(), 64u);
    EXPECT_EQ(table.total_size(), 2ull << 30);
}

TEST(Table, RefusesBadDocuments) {
    EXPECT_THAT(error_of("{"), HasSubstr("segments.json: not valid JSON: "));
    EXPECT_EQ(error_of("[]"), "segments.json: expected a JSON object, got array");
    EXPECT_EQ(error_of("{}"), "segments.json: missing \"segments\" (a list of segments, [] for "
                              "none)");
    EXPECT_EQ(error_of(R"({"segments": [], "segment": []})"),
              "segments.json: unknown key \"segment\" (known: segments)");
    EXPECT_EQ(error_of(R"({"segments": {}})"),
              "segments.json: \"segments\" must be a list, got object");
    EXPECT_EQ(error_of(R"({"segments": ["pipe0"]})"),
              "segments.json: segment #1 must be an object, got string");
    EXPECT_EQ(error_of(R"({"segments": [{"size": 4096}]})"),
              "segments.json: segment #1 has no \"name\"");
    EXPECT_EQ(error_of(R"({"segments": [{"name": 7}]})"),
              "segments.json: segment #1: \"name\" must be a string, got 7");
    EXPECT_EQ(error_of(R"({"segments": [{"name": null}]})"),
              "segments.json: segment #1: \"name\" must be a string, got null");
}

TEST(Table, RefusesBadNames) {
    auto name_error = [](const std::string& name) {
        return error_of(R"({"segments": [{"name": ")" + name +
                        R"(", "size": 4096, "partitions": {"vm1": {}}}]})");
    };
    EXPECT_EQ(name_error(""), "segments.json: segment name \"\" must be 1..31 characters");
    EXPECT_EQ(name_error(std::string(32, 'n')), "segments.json: segment name \"" +
                                                    std::string(32, 'n') +
                                                    "\" must be 1..31 characters");
    EXPECT_EQ(name_error("a/b"), "segments.json: segment name \"a/b\" may contain only letters, "
                                 "digits, '.', '_' and '-'");
    EXPECT_EQ(name_error("a b"), "segments.json: segment name \"a b\" may contain only letters, "
                                 "digits, '.', '_' and '-'");
    EXPECT_EQ(name_error(".."),
              "segments.json: segment name \"..\" must not start with '.' or '-'");
    EXPECT_EQ(name_error(".hidden"),
              "segments.json: segment name \".hidden\" must not start with '.' or '-'");
    EXPECT_EQ(name_error("-x"),
              "segments.json: segment name \"-x\" must not start with '.' or '-'");
    EXPECT_EQ(error_of(R"({"segments": [
        {"name": "pipe0", "size": 4096, "partitions": {"vm1": {}}},
        {"name": "pipe0", "size": 8192, "partitions": {"vm2": {}}}]})"),
              "segments.json: segment \"pipe0\" is listed twice");
}

TEST(Table, RefusesUnknownSegmentKeys) {
    EXPECT_EQ(error_of(with(R"(, "szie": 4096, "size": 4096, "partitions": {"vm1": {}})")),
              "segments.json: segment \"pipe0\": unknown key \"szie\" (known: name, size, pinned, "
              "partitions)");
}

TEST(Table, RefusesBadSizes) {
    EXPECT_EQ(error_of(with(R"(, "partitions": {"vm1": {}})")),
              "segments.json: segment \"pipe0\": missing \"size\" (bytes, or a number with K, M or "
              "G, e.g. \"16M\")");
    EXPECT_EQ(error_of(with_size("true")),
              "segments.json: segment \"pipe0\": \"size\" must be a number of bytes or a string "
              "such as \"16M\", got boolean");
    EXPECT_EQ(error_of(with_size("[4096]")),
              "segments.json: segment \"pipe0\": \"size\" must be a number of bytes or a string "
              "such as \"16M\", got array");
    const std::string not_a_size = " is not a size (bytes, or a number with K, M or G, e.g. "
                                   "\"16M\")";
    EXPECT_EQ(error_of(with_size("-4096")),
              "segments.json: segment \"pipe0\": size -4096" + not_a_size);
    EXPECT_EQ(error_of(with_size("4096.5")),
              "segments.json: segment \"pipe0\": size 4096.5" + not_a_size);
    for (const char* bad : {R"("16Q")", R"("")", R"("M")", R"("16MB")", R"(" 16M")", R"("+16M")",
                            R"("16 M")", R"("0x1000")", R"("-4K")"})
        EXPECT_EQ(error_of(with_size(bad)),
                  "segments.json: segment \"pipe0\": size " + std::string(bad) + not_a_size)
            << bad;
    EXPECT_EQ(error_of(with_size("0")), "segments.json: segment \"pipe0\": size 0 must be more "
                                        "than 0");
    EXPECT_EQ(error_of(with_size(R"("0M")")),
              "segments.json: segment \"pipe0\": size \"0M\" must be more than 0");
    EXPECT_EQ(error_of(with_size("1000")),
              "segments.json: segment \"pipe0\": size 1000 is not a multiple of the page size "
              "(4096)");
    EXPECT_EQ(error_of(with_size(R"("6K")")),
              "segments.json: segment \"pipe0\": size \"6K\" is not a multiple of the page size "
              "(4096)");
    EXPECT_EQ(error_of(with_size(R"("2G")")),
              "segments.json: segment \"pipe0\": size \"2G\" is more than the maximum of 1 GiB");
    EXPECT_EQ(error_of(with_size("1073745920")),
              "segments.json: segment \"pipe0\": size 1073745920 is more than the maximum of 1 "
              "GiB");
    // Too big to count: still "more than the maximum", not a wrap-around.
    EXPECT_EQ(error_of(with_size(R"("18446744073709551616")")),
              "segments.json: segment \"pipe0\": size \"18446744073709551616\" is more than the "
              "maximum of 1 GiB");
    EXPECT_EQ(error_of(with_size(R"("17179869184G")")),
              "segments.json: segment \"pipe0\": size \"17179869184G\" is more than the maximum "
              "of 1 GiB");
    EXPECT_EQ(error_of(with_size("18446744073709551615")),
              "segments.json: segment \"pipe0\": size 18446744073709551615 is more than the "
              "maximum of 1 GiB");
}

TEST(Table, RefusesBadPinned) {
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "pinned": "yes", "partitions": {"vm1": {}})")),
              "segments.json: segment \"pipe0\": \"pinned\" must be true or false, got string");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "pinned": 1, "partitions": {"vm1": {}})")),
              "segments.json: segment \"pipe0\": \"pinned\" must be true or false, got 1");
}

TEST(Table, RefusesBadPartitions) {
    EXPECT_EQ(error_of(with(R"(, "size": 4096)")),
              "segments.json: segment \"pipe0\": missing \"partitions\" (an object of partition "
              "name -> access)");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": ["vm1"])")),
              "segments.json: segment \"pipe0\": \"partitions\" must be an object of partition "
              "name -> access, got array");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": {})")),
              "segments.json: segment \"pipe0\": \"partitions\" is empty; list the partitions that "
              "may map it");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": {"vm9": {}})")),
              "segments.json: segment \"pipe0\": partition \"vm9\" is not a partition of this "
              "fabric (known: vm1, vm2)");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": {"vm1": {}})"),
                       std::set<std::string, std::less<>>{}),
              "segments.json: segment \"pipe0\": partition \"vm1\" is not a partition of this "
              "fabric (known: none)");
    EXPECT_EQ(
        error_of(with(R"(, "size": 4096, "partitions": {"a-name-too-long1": {}})"), std::nullopt),
        "segments.json: segment \"pipe0\": partition name \"a-name-too-long1\" must be 1..15 "
        "letters, digits, '_' or '-'");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": {"vm.1": {}})"), std::nullopt),
              "segments.json: segment \"pipe0\": partition name \"vm.1\" must be 1..15 letters, "
              "digits, '_' or '-'");
    EXPECT_EQ(error_of(with(R"(, "size": 4096, "partitions": {"": {}})"), std::nullopt),
              "segments.json: segment \"pipe0\": partition name \"\" must be 1..15 letters, "
              "digits, '_' or '-'");
}

TEST(Table, RefusesBadAccess) {
    const std::string where = "segments.json: segment \"pipe0\": partition \"vm1\"";
    EXPECT_EQ(error_of(with_access(R"("rw")")),
              where + " must be an object (uid, gid, mode, access), got string");
    EXPECT_EQ(error_of(with_access(R"({"owner": 1})")),
              where + ": unknown key \"owner\" (known: uid, gid, mode, access)");
    EXPECT_EQ(error_of(with_access(R"({"uid": "1000"})")),
              where + ": \"uid\" must be a whole number 0..4294967294, got string");
    EXPECT_EQ(error_of(with_access(R"({"uid": 1.5})")),
              where + ": \"uid\" must be a whole number 0..4294967294, got 1.5");
    EXPECT_EQ(error_of(with_access(R"({"uid": -1})")),
              where + ": \"uid\" -1 is out of range (0..4294967294)");
    EXPECT_EQ(error_of(with_access(R"({"uid": 4294967295})")),
              where + ": \"uid\" 4294967295 is out of range (0..4294967294)");
    EXPECT_EQ(error_of(with_access(R"({"gid": 4294967296})")),
              where + ": \"gid\" 4294967296 is out of range (0..4294967294)");
    EXPECT_EQ(error_of(with_access(R"({"gid": null})")),
              where + ": \"gid\" must be a whole number 0..4294967294, got null");
    EXPECT_EQ(error_of(with_access(R"({"mode": 660})")),
              where + ": \"mode\" must be a string of octal digits such as \"0660\", got the "
                      "number 660; quote it (a JSON number is decimal)");
    EXPECT_EQ(error_of(with_access(R"({"mode": true})")),
              where + ": \"mode\" must be a string of octal digits such as \"0660\", got boolean");
    EXPECT_EQ(error_of(with_access(R"({"mode": "0999"})")),
              where + ": \"mode\" \"0999\" is not 3 or 4 octal digits");
    EXPECT_EQ(error_of(with_access(R"({"mode": "66"})")),
              where + ": \"mode\" \"66\" is not 3 or 4 octal digits");
    EXPECT_EQ(error_of(with_access(R"({"mode": "00660"})")),
              where + ": \"mode\" \"00660\" is not 3 or 4 octal digits");
    EXPECT_EQ(error_of(with_access(R"({"mode": "rw-rw----"})")),
              where + ": \"mode\" \"rw-rw----\" is not 3 or 4 octal digits");
    EXPECT_EQ(error_of(with_access(R"({"mode": "1777"})")),
              where + ": \"mode\" \"1777\" is more than \"0777\" (only permission bits)");
    EXPECT_EQ(error_of(with_access(R"({"access": "wr"})")),
              where + ": \"access\" must be \"rw\" or \"ro\", got \"wr\"");
    EXPECT_EQ(error_of(with_access(R"({"access": true})")),
              where + ": \"access\" must be \"rw\" or \"ro\", got boolean");
}

TEST(Table, RefusesTooManySegments) {
    std::string text = R"({"segments": [)";
    for (int i = 0; i < 65; ++i) {
        if (i)
            text += ", ";
        text += R"({"name": "s)" + std::to_string(i) + R"(", "size": 4096, "partitions": {")" +
                (i % 2 ? "vm1" : "vm2") + R"(": {}}})";
    }
    text += "]}";
    EXPECT_EQ(error_of(text), "segments.json: 65 segments; a fabric can have at most 64");
}

TEST(Table, RefusesTooMuchForAPartition) {
    EXPECT_EQ(error_of(many(32)), "no error");
    EXPECT_EQ(error_of(many(33)),
              "segments.json: partition \"vm1\" is given 33 segments; a partition can map at most "
              "32");
    EXPECT_EQ(error_of(many(2, 512u << 20, "vm2")), "no error");
    EXPECT_EQ(error_of(many(3, 512u << 20, "vm2")),
              "segments.json: partition \"vm2\" is given 1536 MiB of segments; a partition can map "
              "at most 1 GiB (the device's window)");
    EXPECT_EQ(error_of(R"({"segments": [
        {"name": "a", "size": "1G", "partitions": {"vm1": {}}},
        {"name": "b", "size": 4096, "partitions": {"vm1": {}}}]})"),
              "segments.json: partition \"vm1\" is given 1048580 KiB of segments; a partition can "
              "map at most 1 GiB (the device's window)");
}

TEST(Table, RoundTripsThroughCanonicalJson) {
    auto table = Table::parse(R"({"segments": [
        {"name": "pipe0", "size": "16M", "pinned": true,
         "partitions": {"vm2": {"access": "ro"}, "vm1": {"uid": 1000, "gid": 100, "mode": "660"}}},
        {"name": "a", "size": 4096, "partitions": {"vm2": {}}}]})",
                              "segments.json", kFabric);
    auto json = to_json(table);
    EXPECT_EQ(json.dump(),
              R"({"segments":[)"
              R"({"name":"pipe0","partitions":{)"
              R"("vm1":{"access":"rw","gid":100,"mode":"0660","uid":1000},)"
              R"("vm2":{"access":"ro","gid":0,"mode":"0600","uid":0}},"pinned":true,)"
              R"("size":16777216},)"
              R"({"name":"a","partitions":{"vm2":{"access":"rw","gid":0,"mode":"0600","uid":0}},)"
              R"("pinned":false,"size":4096}]})");
    auto again = Table::parse(json.dump(), "again", kFabric);
    EXPECT_EQ(again, table);
    EXPECT_EQ(to_json(Table()).dump(), R"({"segments":[]})");
}

TEST(Table, Formats) {
    EXPECT_EQ(format_size(16u << 20), "16 MiB");
    EXPECT_EQ(format_size(4096), "4 KiB");
    EXPECT_EQ(format_size(1u << 30), "1 GiB");
    EXPECT_EQ(format_size(3ull << 29), "1536 MiB");
    EXPECT_EQ(format_size(1000), "1000 bytes");
    EXPECT_EQ(format_size(1), "1 byte");
    EXPECT_EQ(format_size(0), "0 bytes");
    EXPECT_EQ(format_mode(0660), "0660");
    EXPECT_EQ(format_mode(0), "0000");
    EXPECT_EQ(format_access({1000, 1000, 0660, false}), "rw 1000:1000 0660");
    EXPECT_EQ(format_access({0, 0, 0600, true}), "ro 0:0 0600");
}

class TableFile : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/plseg.XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        dir_ = pattern;
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
};

TEST_F(TableFile, LoadNamesTheFile) {
    auto file = dir_ / "segments.json";
    {
        std::ofstream out(file);
        out << R"({"segments": [{"name": "pipe0", "size": 1000, "partitions": {"vm1": {}}}]})";
    }
    try {
        Table::load(file, kFabric);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  file.string() + ": segment \"pipe0\": size 1000 is not a multiple of the page "
                                  "size (4096)");
    }
    {
        std::ofstream out(file);
        out << R"({"segments": [{"name": "pipe0", "size": "8K", "partitions": {"vm1": {}}}]})";
    }
    auto table = Table::load(file, kFabric);
    EXPECT_EQ(table.origin(), file.string());
    EXPECT_EQ(table.segments().at(0).size, 8192u);
}

TEST_F(TableFile, LoadRefusesAMissingFile) {
    auto file = dir_ / "missing.json";
    try {
        Table::load(file, kFabric);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "cannot read segments file " + file.string() + ": No such file or directory");
    }
}

} // namespace
