#include <map>

#include <gtest/gtest.h>

#include "error.hpp"
#include "run/layout.hpp"

using namespace partlink;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars](const char* name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end())
            return std::nullopt;
        return it->second;
    };
}

} // namespace

TEST(Layout, RelativeToTheExecutable) {
    Layout l = layout_for_executable("/w/build/bin/partlink", env_of({}));
    EXPECT_EQ(l.build_dir, "/w/build");
    EXPECT_EQ(l.qemu, "/w/build/qemu/qemu-system-x86_64");
    EXPECT_EQ(l.images, "/w/build/images");
    EXPECT_EQ(l.default_run_dir, "/w/build/run");
    EXPECT_EQ(l.partlinkd, "/w/build/bin/partlinkd");
    EXPECT_EQ(l.kernel(), "/w/build/images/vmlinux");
    EXPECT_EQ(l.initrd(), "/w/build/images/initramfs.cpio.gz");
    EXPECT_EQ(l.ssh_identity(), "/w/build/images/ssh/id_ed25519");
    EXPECT_EQ(l.firmware_dirs(),
              (std::vector<std::filesystem::path>{"/w/build/qemu/pc-bios", "/usr/share/seabios",
                                                  "/usr/share/qemu"}));
}

TEST(Layout, EnvironmentOverrides) {
    Layout l = layout_for_executable("/w/build/bin/partlink",
                                     env_of({{"PARTLINK_QEMU", "/q/qemu-system-x86_64"},
                                             {"PARTLINK_IMAGES", "/img"},
                                             {"PARTLINK_RUN_DIR", "/runs/a"},
                                             {"PARTLINK_PARTLINKD", "/d/partlinkd"}}));
    EXPECT_EQ(l.partlinkd, "/d/partlinkd");
    EXPECT_EQ(l.qemu, "/q/qemu-system-x86_64");
    EXPECT_EQ(l.images, "/img");
    EXPECT_EQ(l.default_run_dir, "/runs/a");
    EXPECT_EQ(choose_run_dir(std::nullopt, l), "/runs/a");
    EXPECT_EQ(choose_run_dir(std::string("/opt/r"), l), "/opt/r"); // option beats env
    EXPECT_TRUE(choose_run_dir(std::string("rel"), l).is_absolute());
    EXPECT_THROW(choose_run_dir(std::string(""), l), UsageError);
}

TEST(Layout, MissingFilesSayWhatToRun) {
    Layout l = layout_for_executable("/nonexistent/build/bin/partlink", env_of({}));
    try {
        l.require_qemu();
        FAIL();
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("/nonexistent/build/qemu/qemu-system-x86_64"), std::string::npos);
        EXPECT_NE(what.find("make qemu"), std::string::npos);
        EXPECT_EQ(e.exit_code(), kExitRuntime);
    }
    try {
        l.require_images();
        FAIL();
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("/nonexistent/build/images/vmlinux"), std::string::npos);
        EXPECT_NE(what.find("make images"), std::string::npos);
    }
    try {
        l.require_partlinkd();
        FAIL();
    } catch (const Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("partlinkd"), std::string::npos);
        EXPECT_NE(what.find("/nonexistent/build/bin/partlinkd"), std::string::npos);
        EXPECT_NE(what.find("make shim"), std::string::npos);
        EXPECT_EQ(e.exit_code(), kExitRuntime);
    }
}

TEST(Layout, WlmChartScriptAndPython) {
    Layout l = layout_for_executable("/w/build/bin/partlink", env_of({}));
    EXPECT_EQ(l.wlm_chart_script, "/w/build/share/partlink/wlm_chart.py");
    EXPECT_EQ(l.python, "/usr/bin/python3");
    Layout e = layout_for_executable(
        "/w/build/bin/partlink",
        env_of({{"PARTLINK_WLM_CHART", "/src/scripts/wlm_chart.py"}, {"PARTLINK_PYTHON", "/py"}}));
    EXPECT_EQ(e.wlm_chart_script, "/src/scripts/wlm_chart.py");
    EXPECT_EQ(e.python, "/py");
    Layout missing = layout_for_executable("/nonexistent/build/bin/partlink", env_of({}));
    try {
        missing.require_wlm_chart();
        FAIL();
    } catch (const Error& err) {
        std::string what = err.what();
        EXPECT_NE(what.find("/nonexistent/build/share/partlink/wlm_chart.py"), std::string::npos);
        EXPECT_NE(what.find("make shim"), std::string::npos);
    }
}
