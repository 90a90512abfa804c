#include "table.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "error.hpp"

using nlohmann::json;

namespace partlink::segments {

namespace {

constexpr std::size_t kMaxPartitionName = PARTLINK_NAME_LEN - 1;

std::string in_quotes(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

// "string", or the value itself for a number ("1.5", "-1").
std::string described(const json& value) {
    return value.is_number() ? value.dump() : std::string(value.type_name());
}

template <typename Keys>
std::string join(const Keys& keys) {
    std::string out;
    for (const auto& key : keys) {
        if (!out.empty())
            out += ", ";
        out += key;
    }
    return out.empty() ? "none" : out;
}

void check_keys(const json& object, std::initializer_list<std::string_view> known,
                const std::string& where) {
    for (const auto& [key, value] : object.items()) {
        if (std::find(known.begin(), known.end(), key) == known.end())
            throw Error(where + ": unknown key " + in_quotes(key) + " (known: " + join(known) +
                        ")");
    }
}

bool is_segment_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool is_partition_name_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

void check_segment_name(const std::string& name, const std::string& origin) {
    std::string where = origin + ": segment name " + in_quotes(name);
    if (name.empty() || name.size() > kMaxNameLength)
        throw Error(where + " must be 1.." + std::to_string(kMaxNameLength) + " characters");
    if (!std::all_of(name.begin(), name.end(), is_segment_name_char))
        throw Error(where + " may contain only letters, digits, '.', '_' and '-'");
    if (name.front() == '.' || name.front() == '-')
        throw Error(where + " must not start with '.' or '-'");
}

constexpr const char* kSizeForm = "bytes, or a number with K, M or G, e.g. \"16M\"";

// The size as written: an integer, or a string "<n>" / "<n>K" / "<n>M" /
// "<n>G".  nullopt if it is not a size at all; UINT64_MAX if it is too big
// to count.
std::optional<std::uint64_t> size_value(const json& value) {
    if (value.is_number_unsigned())
        return value.get<std::uint64_t>();
    if (value.is_number_integer())
        return std::nullopt; // negative
    if (!value.is_string())
        return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    if (digits == 0)
        return std::nullopt;
    unsigned shift = 0;
    if (digits + 1 == text.size()) {
        switch (text.back()) {
        case 'K':
        case 'k':
            shift = 10;
            break;
        case 'M':
        case 'm':
            shift = 20;
            break;
        case 'G':
        case 'g':
            shift = 30;
            break;
        default:
            return std::nullopt;
        }
    } else if (digits != text.size()) {
        return std::nullopt;
    }
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        unsigned digit = static_cast<unsigned>(text[i] - '0');
        if (n > (kMax - digit) / 10)
            return kMax;
        n = n * 10 + digit;
    }
    if (n > (kMax >> shift))
        return kMax;
    return n << shift;
}

std::uint64_t parse_size(const json& value, const std::string& where) {
    if (!value.is_number() && !value.is_string())
        throw Error(where +
                    ": \"size\" must be a number of bytes or a string such as \"16M\", got " +
                    std::string(value.type_name()));
    std::string as_written = "size " + value.dump();
    auto size = size_value(value);
    if (!size)
        throw Error(where + ": " + as_written + " is not a size (" + kSizeForm + ")");
    if (*size == 0)
        throw Error(where + ": " + as_written + " must be more than 0");
    if (*size > kMaxSegmentSize)
        throw Error(where + ": " + as_written + " is more than the maximum of " +
                    format_size(kMaxSegmentSize));
    if (*size % kPageSize != 0)
        throw Error(where + ": " + as_written + " is not a multiple of the page size (" +
                    std::to_string(kPageSize) + ")");
    return *size;
}

std::uint32_t parse_owner(const json& value, const char* key, const std::string& where) {
    std::string range = "0.." + std::to_string(kMaxOwnerId);
    if (!value.is_number_integer())
        throw Error(where + ": \"" + key + "\" must be a whole number " + range + ", got " +
                    described(value));
    if (!value.is_number_unsigned() || value.get<std::uint64_t>() > kMaxOwnerId)
        throw Error(where + ": \"" + key + "\" " + value.dump() + " is out of range (" + range +
                    ")");
    return static_cast<std::uint32_t>(value.get<std::uint64_t>());
}

std::uint16_t parse_mode(const json& value, const std::string& where) {
    constexpr const char* kForm = "\"mode\" must be a string of octal digits such as \"0660\"";
    if (value.is_number())
        throw Error(where + ": " + kForm + ", got the number " + value.dump() +
                    "; quote it (a JSON number is decimal)");
    if (!value.is_string())
        throw Error(where + ": " + kForm + ", got " + std::string(value.type_name()));
    const auto& text = value.get_ref<const std::string&>();
    bool octal = std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '7'; });
    if (!octal || text.size() < 3 || text.size() > 4)
        throw Error(where + ": \"mode\" " + in_quotes(text) + " is not 3 or 4 octal digits");
    unsigned mode = 0;
    for (char c : text)
        mode = mode * 8 + static_cast<unsigned>(c - '0');
    if (mode > 0777)
        throw Error(where + ": \"mode\" " + in_quotes(text) +
                    " is more than \"0777\" (only permission bits)");
    return static_cast<std::uint16_t>(mode);
}

Access parse_access(const json& value, const std::string& where) {
    if (!value.is_object())
        throw Error(where + " must be an object (uid, gid, mode, access), got " +
                    std::string(value.type_name()));
    check_keys(value, {"uid", "gid", "mode", "access"}, where);
    Access access;
    if (auto it = value.find("uid"); it != value.end())
        access.uid = parse_owner(*it, "uid", where);
    if (auto it = value.find("gid"); it != value.end())
        access.gid = parse_owner(*it, "gid", where);
    if (auto it = value.find("mode"); it != value.end())
        access.mode = parse_mode(*it, where);
    if (auto it = value.find("access"); it != value.end()) {
        if (it->is_string() && *it == "rw")
            access.read_only = false;
        else if (it->is_string() && *it == "ro")
            access.read_only = true;
        else
            throw Error(where + ": \"access\" must be \"rw\" or \"ro\", got " +
                        (it->is_string() ? it->dump() : described(*it)));
    }
    return access;
}

void check_partition(const std::string& name, const KnownPartitions& known,
                     const std::string& where) {
    if (known) {
        if (!known->contains(name))
            throw Error(where + ": partition " + in_quotes(name) +
                        " is not a partition of this fabric (known: " + join(*known) + ")");
        return;
    }
    if (name.empty() || name.size() > kMaxPartitionName ||
        !std::all_of(name.begin(), name.end(), is_partition_name_char))
        throw Error(where + ": partition name " + in_quotes(name) + " must be 1.." +
                    std::to_string(kMaxPartitionName) + " letters, digits, '_' or '-'");
}

Segment parse_segment(const json& value, std::size_t index, const std::string& origin,
                      const KnownPartitions& known) {
    std::string numbered = origin + ": segment #" + std::to_string(index + 1);
    if (!value.is_object())
        throw Error(numbered + " must be an object, got " + std::string(value.type_name()));
    auto name_it = value.find("name");
    if (name_it == value.end())
        throw Error(numbered + " has no \"name\"");
    if (!name_it->is_string())
        throw Error(numbered + ": \"name\" must be a string, got " + described(*name_it));

    Segment segment;
    segment.name = name_it->get<std::string>();
    check_segment_name(segment.name, origin);
    std::string where = origin + ": segment " + in_quotes(segment.name);
    check_keys(value, {"name", "size", "pinned", "partitions"}, where);

    auto size_it = value.find("size");
    if (size_it == value.end())
        throw Error(where + ": missing \"size\" (" + kSizeForm + ")");
    segment.size = parse_size(*size_it, where);

    if (auto it = value.find("pinned"); it != value.end()) {
        if (!it->is_boolean())
            throw Error(where + ": \"pinned\" must be true or false, got " + described(*it));
        segment.pinned = it->get<bool>();
    }

    auto parts = value.find("partitions");
    if (parts == value.end())
        throw Error(where + ": missing \"partitions\" (an object of partition name -> access)");
    if (!parts->is_object())
        throw Error(where + ": \"partitions\" must be an object of partition name -> access, got " +
                    std::string(parts->type_name()));
    if (parts->empty())
        throw Error(where + ": \"partitions\" is empty; list the partitions that may map it");
    // nlohmann::json objects iterate in sorted key order.
    for (const auto& [partition, access] : parts->items()) {
        check_partition(partition, known, where);
        segment.partitions.emplace(
            partition, parse_access(access, where + ": partition " + in_quotes(partition)));
    }
    return segment;
}

// Per partition: at most PARTLINK_SEG_SLOTS segments, at most the window.
void check_partition_totals(const std::vector<Segment>& segments, const std::string& origin) {
    struct Total {
        std::size_t count = 0;
        std::uint64_t bytes = 0;
    };
    std::map<std::string, Total> totals;
    for (const auto& segment : segments) {
        for (const auto& [partition, access] : segment.partitions) {
            auto& total = totals[partition];
            ++total.count;
            total.bytes += segment.size;
        }
    }
    for (const auto& [partition, total] : totals) {
        std::string where = origin + ": partition " + in_quotes(partition);
        if (total.count > kMaxSegmentsPerPartition)
            throw Error(where + " is given " + std::to_string(total.count) +
                        " segments; a partition can map at most " +
                        std::to_string(kMaxSegmentsPerPartition));
        if (total.bytes > kWindowSize)
            throw Error(where + " is given " + format_size(total.bytes) +
                        " of segments; a partition can map at most " + format_size(kWindowSize) +
                        " (the device's window)");
    }
}

std::string describe_partitions(const Segment& segment) {
    std::string out;
    for (const auto& [partition, access] : segment.partitions) {
        if (!out.empty())
            out += ", ";
        out += partition + " " + format_access(access);
    }
    return out;
}

// "vm2 ro -> rw, uid 0 -> 1000", or "" if nothing changed.
std::string describe_access_change(const std::string& partition, const Access& from,
                                   const Access& to) {
    std::vector<std::string> parts;
    if (from.read_only != to.read_only)
        parts.push_back(std::string(from.read_only ? "ro" : "rw") + " -> " +
                        (to.read_only ? "ro" : "rw"));
    if (from.uid != to.uid)
        parts.push_back("uid " + std::to_string(from.uid) + " -> " + std::to_string(to.uid));
    if (from.gid != to.gid)
        parts.push_back("gid " + std::to_string(from.gid) + " -> " + std::to_string(to.gid));
    if (from.mode != to.mode)
        parts.push_back("mode " + format_mode(from.mode) + " -> " + format_mode(to.mode));
    if (parts.empty())
        return {};
    return partition + " " + join(parts);
}

} // namespace

const Access* Segment::access_of(std::string_view partition) const {
    auto it = partitions.find(partition);
    return it == partitions.end() ? nullptr : &it->second;
}

Table Table::load(const std::filesystem::path& file, const KnownPartitions& known) {
    std::ifstream in(file);
    if (!in)
        throw_errno("cannot read segments file " + file.string());
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad())
        throw_errno("cannot read segments file " + file.string());
    return parse(text.str(), file.string(), known);
}

Table Table::parse(std::string_view text, const std::string& origin, const KnownPartitions& known) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        throw Error(origin + ": not valid JSON: " + e.what());
    }
    if (!doc.is_object())
        throw Error(origin + ": expected a JSON object, got " + std::string(doc.type_name()));
    check_keys(doc, {"segments"}, origin);
    auto list = doc.find("segments");
    if (list == doc.end())
        throw Error(origin + ": missing \"segments\" (a list of segments, [] for none)");
    if (!list->is_array())
        throw Error(origin + ": \"segments\" must be a list, got " +
                    std::string(list->type_name()));
    if (list->size() > kMaxSegments)
        throw Error(origin + ": " + std::to_string(list->size()) +
                    " segments; a fabric can have at most " + std::to_string(kMaxSegments));

    Table table;
    table.origin_ = origin;
    for (std::size_t i = 0; i < list->size(); ++i) {
        auto segment = parse_segment((*list)[i], i, origin, known);
        if (table.find(segment.name))
            throw Error(origin + ": segment " + in_quotes(segment.name) + " is listed twice");
        table.segments_.push_back(std::move(segment));
    }
    check_partition_totals(table.segments_, origin);
    return table;
}

const Segment* Table::find(std::string_view name) const {
    for (const auto& segment : segments_)
        if (segment.name == name)
            return &segment;
    return nullptr;
}

std::uint64_t Table::total_size() const {
    std::uint64_t total = 0;
    for (const auto& segment : segments_)
        total += segment.size;
    return total;
}

std::vector<Change> diff(const Table& old, const Table& next) {
    std::vector<Change> changes;
    for (const auto& segment : old.segments())
        if (!next.find(segment.name))
            changes.push_back({Change::Kind::Removed, segment.name, {}, "- " + segment.name});

    for (const auto& segment : next.segments()) {
        const Segment* before = old.find(segment.name);
        std::string pinned = segment.pinned ? ", pinned" : "";
        if (!before) {
            changes.push_back({Change::Kind::Added,
                               segment.name,
                               {},
                               "+ " + segment.name + " (" + format_size(segment.size) + pinned +
                                   ") for " + describe_partitions(segment)});
            continue;
        }
        if (before->size != segment.size) {
            changes.push_back({Change::Kind::Resized,
                               segment.name,
                               {},
                               "~ " + segment.name + ": " + format_size(before->size) + " -> " +
                                   format_size(segment.size) + pinned +
                                   ", a new segment (contents not kept) for " +
                                   describe_partitions(segment)});
            continue;
        }
        std::string prefix = "~ " + segment.name + ": ";
        if (before->pinned != segment.pinned)
            changes.push_back({Change::Kind::Pinned,
                               segment.name,
                               {},
                               prefix + "pinned " + (before->pinned ? "true" : "false") + " -> " +
                                   (segment.pinned ? "true" : "false")});
        // Both maps are sorted: walk them together, in partition name order.
        auto a = before->partitions.begin();
        auto b = segment.partitions.begin();
        while (a != before->partitions.end() || b != segment.partitions.end()) {
            if (b == segment.partitions.end() ||
                (a != before->partitions.end() && a->first < b->first)) {
                changes.push_back(
                    {Change::Kind::Revoked, segment.name, a->first, prefix + "- " + a->first});
                ++a;
            } else if (a == before->partitions.end() || b->first < a->first) {
                changes.push_back({Change::Kind::Granted, segment.name, b->first,
                                   prefix + "+ " + b->first + " " + format_access(b->second)});
                ++b;
            } else {
                auto what = describe_access_change(a->first, a->second, b->second);
                if (!what.empty())
                    changes.push_back(
                        {Change::Kind::Access, segment.name, a->first, prefix + what});
                ++a;
                ++b;
            }
        }
    }
    return changes;
}

json to_json(const Segment& segment) {
    json partitions = json::object();
    for (const auto& [partition, access] : segment.partitions)
        partitions[partition] = {{"uid", access.uid},
                                 {"gid", access.gid},
                                 {"mode", format_mode(access.mode)},
                                 {"access", access.read_only ? "ro" : "rw"}};
    return {{"name", segment.name},
            {"size", segment.size},
            {"pinned", segment.pinned},
            {"partitions", std::move(partitions)}};
}

json to_json(const Table& table) {
    json list = json::array();
    for (const auto& segment : table.segments())
        list.push_back(to_json(segment));
    return {{"segments", std::move(list)}};
}

std::string format_size(std::uint64_t bytes) {
    static constexpr std::pair<unsigned, const char*> kUnits[] = {
        {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
    if (bytes != 0)
        for (const auto& [shift, unit] : kUnits)
            if (bytes % (std::uint64_t{1} << shift) == 0)
                return std::to_string(bytes >> shift) + " " + unit;
    return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

std::string format_mode(std::uint16_t mode) {
    char text[8];
    std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

std::string format_access(const Access& access) {
    return std::string(access.read_only ? "ro " : "rw ") + std::to_string(access.uid) + ":" +
           std::to_string(access.gid) + " " + format_mode(access.mode);
}

} // namespace partlink::segments
