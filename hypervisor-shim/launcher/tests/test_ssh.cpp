#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "host/process.hpp"
#include "host/ssh.hpp"

using namespace partlink;

TEST(ShellQuote, PlainWordsStayPlain) {
    EXPECT_EQ(shell_quote("uname"), "uname");
    EXPECT_EQ(shell_quote("-r"), "-r");
    EXPECT_EQ(shell_quote("10.77.0.2"), "10.77.0.2");
    EXPECT_EQ(shell_quote("/proc/net/dev"), "/proc/net/dev");
    EXPECT_EQ(shell_quote("a=b,c:d@e%f+g"), "a=b,c:d@e%f+g");
}

TEST(ShellQuote, SpecialWordsAreQuoted) {
    EXPECT_EQ(shell_quote(""), "''");
    EXPECT_EQ(shell_quote("echo a b"), "'echo a b'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    EXPECT_EQ(shell_quote("$HOME"), "'$HOME'");
    EXPECT_EQ(shell_quote("*"), "'*'");
    EXPECT_EQ(shell_quote("a;b"), "'a;b'");
    EXPECT_EQ(shell_quote("~"), "'~'");
}

TEST(ShellQuote, JoinedWordsSurviveARealShell) {
    // What the guest's shell does with the joined string: each word must
    // arrive exactly as typed.
    std::vector<std::string> words = {"printf", "[%s]", "a b",         "it's",      "",  "$HOME",
                                      "*",      "x\"y", "back\\slash", "new\nline", ";", "|"};
    CommandResult r = run_command({"sh", "-c", shell_join(words)});
    ASSERT_TRUE(r.status.success()) << r.output;
    EXPECT_EQ(r.output, "[a b][it's][][$HOME][*][x\"y][back\\slash][new\nline][;][|]");
}

TEST(ShellQuote, ShDashCIdiom) {
    // partlink ssh vm1 -- sh -c 'echo a b'
    CommandResult r = run_command({"sh", "-c", shell_join({"sh", "-c", "echo a b"})});
    EXPECT_EQ(r.output, "a b\n");
}

TEST(SshArgv, WithCommand) {
    SshTarget t{"/I/ssh/id_ed25519", "/I/ssh/known_hosts", 40001};
    EXPECT_THAT(
        build_ssh_argv(t, {"sh", "-c", "echo a b"}, false),
        ::testing::ElementsAreArray(std::vector<std::string>{
            "ssh", "-i", "/I/ssh/id_ed25519", "-p", "40001", "-o", "HostKeyAlias=partlink-guest",
            "-o", "UserKnownHostsFile=/I/ssh/known_hosts", "-o", "StrictHostKeyChecking=yes", "-o",
            "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10", "root@127.0.0.1",
            "sh -c 'echo a b'"}));
}

TEST(SshArgv, InteractiveGetsATty) {
    SshTarget t{"/k", "/h", 22};
    auto argv = build_ssh_argv(t, {}, true);
    ASSERT_GE(argv.size(), 2u);
    EXPECT_EQ(argv[argv.size() - 2], "-t");
    EXPECT_EQ(argv.back(), "root@127.0.0.1");
    argv = build_ssh_argv(t, {}, false);
    EXPECT_EQ(std::count(argv.begin(), argv.end(), "-t"), 0);
}

TEST(SshArgv, SingleWordIsAShellCommandLine) {
    SshTarget t{"/k", "/h", 22};
    auto argv = build_ssh_argv(t, {"cat /proc/loadavg | wc -l"}, false);
    EXPECT_EQ(argv.back(), "cat /proc/loadavg | wc -l");
}
