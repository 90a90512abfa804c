// The KVM probe, run with TCG: the same tiny guest must boot and make QEMU
// exit with status 3, which is what tells a working KVM from a hanging one.
#include <cstdlib>
#include <unistd.h>

#include <gtest/gtest.h>

#include "qemu/accel_probe.hpp"
#include "run/layout.hpp"
#include "run/run_dir.hpp"

using namespace partlink;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

class AccelProbe : public ::testing::Test {
protected:
    void SetUp() override {
        if (auto q = getenv_nonempty("PARTLINK_QEMU"))
            qemu_ = *q;
        else if (auto b = getenv_nonempty("PARTLINK_BUILD_DIR"))
            qemu_ = fs::path(*b) / "qemu" / "qemu-system-x86_64";
        if (qemu_.empty() || !fs::exists(qemu_))
            GTEST_SKIP() << "no QEMU at '" << qemu_.string() << "' (run `make qemu`)";
        if (auto b = getenv_nonempty("PARTLINK_BUILD_DIR"))
            if (fs::exists(fs::path(*b) / "images" / "vmlinuz"))
                kernel_ = fs::path(*b) / "images" / "vmlinuz";
        std::string tmpl = (fs::temp_directory_path() / "partlink-probe-XXXXXX").string();
        ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        if (!dir_.empty())
            fs::remove_all(dir_);
    }

    ProbeSetup setup(std::chrono::milliseconds timeout) const {
        Layout l;
        l.qemu = qemu_;
        return {qemu_,   l.firmware_dirs(), dir_ / "probe.bin",    dir_ / "probe.log",
                timeout, kernel_,           dir_ / "probe.console"};
    }

    fs::path qemu_;
    std::optional<fs::path> kernel_;
    fs::path dir_;
};

} // namespace

TEST_F(AccelProbe, TcgGuestRunsItsFirstInstruction) {
    // Generous: a loaded CI machine may take a while to start QEMU.
    ProbeResult r = run_bios_probe(setup(20s), Accel::Tcg);
    EXPECT_TRUE(r.booted) << r.detail << "\n" << tail_lines(dir_ / "probe.log", 20);
    EXPECT_EQ(r.detail, "probe booted");
    EXPECT_FALSE(fs::exists(dir_ / "probe.bin")); // a temporary
}

TEST_F(AccelProbe, TimeoutMeansNotBooted) {
    ProbeResult r = run_bios_probe(setup(1ms), Accel::Tcg);
    EXPECT_FALSE(r.booted);
    EXPECT_NE(r.detail.find("did not run within"), std::string::npos) << r.detail;
}

TEST_F(AccelProbe, TcgGuestKernelPrintsItsBanner) {
    if (!kernel_)
        GTEST_SKIP() << "no guest kernel (run `make images`)";
    // TCG needs a few seconds to decompress the kernel; KVM well under one.
    ProbeResult r = run_accel_probe(setup(60s), Accel::Tcg);
    EXPECT_TRUE(r.booted) << r.detail << "\n" << tail_lines(dir_ / "probe.log", 20);
    EXPECT_NE(r.detail.find("guest kernel started in"), std::string::npos) << r.detail;
}

TEST_F(AccelProbe, SilentKernelMeansNotBooted) {
    if (!kernel_)
        GTEST_SKIP() << "no guest kernel (run `make images`)";
    ProbeResult r = run_kernel_probe(setup(300ms), Accel::Tcg);
    EXPECT_FALSE(r.booted);
    EXPECT_NE(r.detail.find("printed nothing within 0.3 s"), std::string::npos) << r.detail;
}

TEST_F(AccelProbe, RequestedTcgSkipsTheProbe) {
    std::string said;
    Output out([&](Output::Kind, std::string_view text) { said += text; });
    EXPECT_EQ(choose_accel(Accel::Tcg, setup(3s), out), Accel::Tcg);
    EXPECT_EQ(said, "accel tcg (requested)");
    EXPECT_FALSE(fs::exists(dir_ / "probe.bin"));
}
