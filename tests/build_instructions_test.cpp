// End-to-end tests of every Dockerfile instruction slipway builds: the real binary, a throwaway
// store with a busybox base image, and the resulting image config checked field by field against
// what docker (BuildKit) records.
#include <gtest/gtest.h>

#include <future>
#include <sstream>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

class InstructionTest : public BusyboxStoreTest {
 protected:
  // Builds and expects success; returns the image config.
  json build_ok(const std::string& dockerfile, const std::string& tag,
                std::vector<std::string> extra = {}) {
    last_ = build(dockerfile, tag, std::move(extra));
    EXPECT_EQ(last_.exit_code, 0) << last_.out << last_.err;
    if (last_.exit_code != 0) return json::object();
    return image_config(root(), tag);
  }

  std::string run(const std::string& image, std::vector<std::string> command) {
    std::vector<std::string> args = {"run", "--rm", image};
    args.insert(args.end(), command.begin(), command.end());
    auto ran = run_slipway(root(), args);
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return ran.out;
  }

  // History entries after the base image's, as (created_by, empty_layer).
  static std::vector<std::pair<std::string, bool>> history(const json& config) {
    std::vector<std::pair<std::string, bool>> entries;
    bool first = true;
    for (const auto& entry : config["history"]) {
      if (first) {
        first = false;
        continue;
      }
      entries.emplace_back(entry.value("created_by", ""), entry.value("empty_layer", false));
      EXPECT_EQ(entry.value("comment", ""), "buildkit.dockerfile.v0");
    }
    return entries;
  }

  CommandResult last_;
};

// ---- metadata instructions

TEST_F(InstructionTest, LabelSetsLabelsInBothFormsWithExpansion) {
  json config = build_ok(
      "FROM busybox\n"
      "ENV VERSION=1.2\n"
      "LABEL org.example.version=$VERSION \"quoted key\"=\"a b\" empty=\n"
      "LABEL legacy value with spaces\n",
      "label:1");
  EXPECT_EQ(config["config"]["Labels"], json({{"org.example.version", "1.2"},
                                              {"quoted key", "a b"},
                                              {"empty", ""},
                                              {"legacy", "value with spaces"}}));
  auto entries = history(config);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[1], std::make_pair(std::string("LABEL org.example.version=1.2 quoted key=a b "
                                                   "empty="),
                                       true));
  EXPECT_EQ(entries[2], std::make_pair(std::string("LABEL legacy=value with spaces"), true));
}

TEST_F(InstructionTest, EntrypointExecAndShellFormsAndTheInheritedCmd) {
  json base = build_ok("FROM busybox\nCMD [\"echo\", \"base-cmd\"]\n", "epbase:1");
  EXPECT_EQ(base["config"]["Cmd"], json({"echo", "base-cmd"}));

  // An ENTRYPOINT resets the CMD inherited from the base image...
  json reset = build_ok("FROM epbase:1\nENTRYPOINT [\"echo\", \"ep\"]\n", "ep1:1");
  EXPECT_EQ(reset["config"]["Entrypoint"], json({"echo", "ep"}));
  EXPECT_FALSE(reset["config"].contains("Cmd")) << reset["config"].dump();
  EXPECT_EQ(history(reset).back(),
            std::make_pair(std::string("ENTRYPOINT [\"echo\" \"ep\"]"), true));
  EXPECT_EQ(run("ep1:1", {}), "ep\n");

  // ... but not a CMD set in the same stage.
  json kept = build_ok("FROM epbase:1\nCMD [\"mine\"]\nENTRYPOINT echo shell-form\n", "ep2:1");
  EXPECT_EQ(kept["config"]["Entrypoint"], json({"/bin/sh", "-c", "echo shell-form"}));
  EXPECT_EQ(kept["config"]["Cmd"], json({"mine"}));

  json empty = build_ok("FROM ep1:1\nENTRYPOINT []\n", "ep3:1");
  EXPECT_FALSE(empty["config"].contains("Entrypoint"));
  EXPECT_EQ(history(empty).back(), std::make_pair(std::string("ENTRYPOINT []"), true));
}

TEST_F(InstructionTest, EntrypointResetsACmdSetInTheParentStage) {
  // BuildKit starts every stage with no CMD of its own, also one built FROM an earlier stage.
  json config = build_ok(
      "FROM busybox AS base\n"
      "CMD [\"echo\", \"from-base\"]\n"
      "FROM base\n"
      "ENTRYPOINT [\"echo\", \"ep\"]\n",
      "epstage:1");
  EXPECT_EQ(config["config"]["Entrypoint"], json({"echo", "ep"}));
  EXPECT_FALSE(config["config"].contains("Cmd")) << config["config"].dump();
}

TEST_F(InstructionTest, UserIsRecordedAndRunStepsRunAsThatUser) {
  json config = build_ok(
      "FROM busybox\n"
      "ENV WHO=nobody\n"
      "USER $WHO\n"
      "RUN id -u > /tmp/uid && id -g > /tmp/gid\n"
      "USER 123:456\n"
      "RUN id -u > /tmp/uid2 && id -g > /tmp/gid2\n",
      "user:1");
  EXPECT_EQ(config["config"]["User"], "123:456");
  auto entries = history(config);
  EXPECT_EQ(entries[1], std::make_pair(std::string("USER nobody"), true));
  EXPECT_EQ(run("user:1", {"cat", "/tmp/uid", "/tmp/gid", "/tmp/uid2", "/tmp/gid2"}),
            "65534\n65534\n123\n456\n");
}

TEST_F(InstructionTest, UnknownUserIsAClearError) {
  auto failed = build("FROM busybox\nUSER nosuchuser\nRUN true\n", "baduser:1");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.err,
            "Dockerfile:3:1: RUN: unable to find user nosuchuser: no matching entries in passwd "
            "file\n");
}

TEST_F(InstructionTest, WorkdirIsCreatedRelativeToThePreviousOneAsALayer) {
  json config = build_ok(
      "FROM busybox\n"
      "WORKDIR /app\n"
      "WORKDIR sub/dir\n"
      "RUN pwd > /pwd.txt\n"
      "WORKDIR /etc\n"
      "WORKDIR /\n",
      "workdir:1");
  EXPECT_EQ(config["config"]["WorkingDir"], "/");
  std::vector<std::pair<std::string, bool>> expected = {
      {"WORKDIR /app", false},
      {"WORKDIR /app/sub/dir", false},
      {"RUN /bin/sh -c pwd > /pwd.txt # buildkit", false},
      {"WORKDIR /etc", true},  // exists already: an empty diff, no layer
      {"WORKDIR /", true}};
  EXPECT_EQ(history(config), expected);
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), 4u);
  EXPECT_EQ(run("workdir:1", {"cat", "/pwd.txt"}), "/app/sub/dir\n");

  // Made as the current USER, who can then write there.
  json owned = build_ok(
      "FROM busybox\nUSER nobody\nWORKDIR /data\nRUN stat -c '%u:%g %a' . > stat.txt\nUSER 0\n",
      "workdir:2");
  EXPECT_EQ(owned["config"]["WorkingDir"], "/data");
  EXPECT_EQ(run("workdir:2", {"cat", "/data/stat.txt"}), "65534:65534 755\n");
}

TEST_F(InstructionTest, VolumeStopsignalAndShell) {
  json config = build_ok(
      "FROM busybox\n"
      "ENV DATA=/data\n"
      "VOLUME $DATA /logs\n"
      "VOLUME [\"/json\"]\n"
      "STOPSIGNAL SIGKILL\n"
      "SHELL [\"/bin/sh\", \"-ec\"]\n"
      "RUN echo \"shell=$0\" > /shell.txt\n"
      "CMD echo from-cmd\n",
      "misc:1");
  EXPECT_EQ(
      config["config"]["Volumes"],
      json({{"/data", json::object()}, {"/logs", json::object()}, {"/json", json::object()}}));
  EXPECT_EQ(config["config"]["StopSignal"], "SIGKILL");
  EXPECT_EQ(config["config"]["Shell"], json({"/bin/sh", "-ec"}));
  EXPECT_EQ(config["config"]["Cmd"], json({"/bin/sh", "-ec", "echo from-cmd"}));
  std::vector<std::pair<std::string, bool>> expected = {
      {"ENV DATA=/data", true},
      {"VOLUME [/data /logs]", true},
      {"VOLUME [/json]", true},
      {"STOPSIGNAL SIGKILL", true},
      {"SHELL [/bin/sh -ec]", true},
      {"RUN /bin/sh -ec echo \"shell=$0\" > /shell.txt # buildkit", false},
      {"CMD [\"/bin/sh\" \"-ec\" \"echo from-cmd\"]", true}};
  EXPECT_EQ(history(config), expected);
  EXPECT_EQ(run("misc:1", {"cat", "/shell.txt"}), "shell=/bin/sh\n");
}

TEST_F(InstructionTest, HealthcheckStoresTestAndDurations) {
  json config = build_ok(
      "FROM busybox\n"
      "HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms "
      "--retries=4 CMD wget -q http://localhost/ || exit 1\n",
      "health:1");
  EXPECT_EQ(config["config"]["Healthcheck"],
            json({{"Test", {"CMD-SHELL", "wget -q http://localhost/ || exit 1"}},
                  {"Interval", 300000000000LL},
                  {"Timeout", 3000000000LL},
                  {"StartPeriod", 90000000000LL},
                  {"StartInterval", 500000000LL},
                  {"Retries", 4}}));
  EXPECT_EQ(history(config).back(),
            std::make_pair(std::string("HEALTHCHECK &{[\"CMD-SHELL\" \"wget -q http://localhost/ "
                                       "|| exit 1\"] \"5m0s\" \"3s\" \"1m30s\" \"500ms\" '\\x04'}"),
                           true));

  json exec = build_ok("FROM health:1\nHEALTHCHECK CMD [\"true\"]\n", "health:2");
  EXPECT_EQ(exec["config"]["Healthcheck"], json({{"Test", {"CMD", "true"}}}));
  json none = build_ok("FROM health:1\nHEALTHCHECK NONE\n", "health:3");
  EXPECT_EQ(none["config"]["Healthcheck"], json({{"Test", {"NONE"}}}));
  EXPECT_EQ(history(none).back(),
            std::make_pair(std::string("HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" \"0s\" "
                                       "'\\x00'}"),
                           true));
}

TEST_F(InstructionTest, OnbuildTriggersRunInTheChildOnly) {
  json parent = build_ok(
      "FROM busybox\n"
      "ONBUILD RUN echo triggered > /trigger.txt\n"
      "ONBUILD ENV FROM_TRIGGER=yes\n",
      "parent:1");
  EXPECT_EQ(parent["config"]["OnBuild"],
            json({"RUN echo triggered > /trigger.txt", "ENV FROM_TRIGGER=yes"}));
  EXPECT_EQ(history(parent).size(), 0u);  // ONBUILD adds no history entry

  json child = build_ok("FROM parent:1\nRUN cat /trigger.txt\n", "child:1");
  EXPECT_NE(last_.out.find("# Executing 2 build triggers"), std::string::npos) << last_.out;
  EXPECT_FALSE(child["config"].contains("OnBuild"));
  EXPECT_EQ(child["config"]["Env"], json({kDefaultPath, "FROM_TRIGGER=yes"}));
  EXPECT_EQ(count_lines_equal(last_.out, "triggered"), 1) << last_.out;

  // Grandchildren do not run them again.
  build_ok("FROM child:1\nRUN test ! -e /grandchild\n", "grandchild:1");
  EXPECT_EQ(last_.out.find("build trigger"), std::string::npos) << last_.out;
}

TEST_F(InstructionTest, RunWithHeredocs) {
  build_ok(
      "FROM busybox\n"
      "RUN <<EOF\n"
      "echo first > /one.txt\n"
      "echo second >> /one.txt\n"
      "EOF\n"
      "RUN cat > /two.txt <<-END && echo done >> /two.txt\n"
      "\tindented\n"
      "\tEND\n",
      "heredoc:1");
  EXPECT_EQ(run("heredoc:1", {"cat", "/one.txt", "/two.txt"}), "first\nsecond\nindented\ndone\n");
}

TEST_F(InstructionTest, RunHeredocWithAShebangRunsAsAScriptFile) {
  std::string dockerfile =
      "FROM busybox\n"
      "RUN <<'SCRIPT'\n"
      "#!/bin/sh -e\n"
      "echo \"ran as $0\" > /script.log\n"
      "SCRIPT\n";
  build_ok(dockerfile, "shebang:1");
  EXPECT_EQ(run("shebang:1", {"cat", "/script.log"}), "ran as /dev/pipes/SCRIPT\n");
  // The body is part of the cache key: another script runs again.
  build_ok(dockerfile, "shebang:2");
  EXPECT_EQ(count_lines_equal(last_.out, " ---> Using cache"), 1) << last_.out;
  std::string changed = dockerfile;
  changed.replace(changed.find("ran as"), 6, "now as");
  build_ok(changed, "shebang:3");
  EXPECT_EQ(count_lines_equal(last_.out, " ---> Using cache"), 0) << last_.out;
  EXPECT_EQ(run("shebang:3", {"cat", "/script.log"}), "now as /dev/pipes/SCRIPT\n");
}

TEST_F(InstructionTest, ShebangHeredocIsStartedByTheShellAsBuildKitRecordsIt) {
  // BuildKit hands the script's path to the stage's SHELL: the shell here marks that it ran,
  // then execs its $0, which is the path.
  json config = build_ok(
      "FROM busybox\n"
      "RUN <<EOF\n"
      "#!/bin/sh\n"
      "echo default > /default.log\n"
      "EOF\n"
      "SHELL [\"/bin/sh\", \"-c\", \"export SHELL_USED=yes; exec \\\"$0\\\"\"]\n"
      "RUN <<EOF\n"
      "#!/bin/sh\n"
      "echo \"$SHELL_USED $0\" > /custom.log\n"
      "EOF\n",
      "shebang:shell");
  EXPECT_EQ(run("shebang:shell", {"cat", "/default.log", "/custom.log"}),
            "default\nyes /dev/pipes/EOF\n");
  auto entries = history(config);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].first, "RUN /bin/sh -c /dev/pipes/EOF # buildkit");
  EXPECT_EQ(entries[2].first,
            "RUN /bin/sh -c export SHELL_USED=yes; exec \"$0\" /dev/pipes/EOF # buildkit");
}

// ---- ARG and build-args

TEST_F(InstructionTest, GlobalAndStageArgsWithBuildArgs) {
  json config = build_ok(
      "ARG BASE=busybox\n"
      "ARG UNUSED_GLOBAL\n"
      "FROM ${BASE}\n"
      "ARG BASE\n"
      "ARG GREETING=hello\n"
      "ARG OVERRIDDEN=default\n"
      "ARG TARGETARCH\n"
      "ARG NOVALUE\n"
      "RUN echo \"$BASE $GREETING $OVERRIDDEN $TARGETARCH [$NOVALUE]\" > /args.txt\n"
      "ENV GREETING=from-env\n"
      "RUN echo $GREETING > /env.txt\n",
      "args:1", {"--build-arg", "OVERRIDDEN=given", "--build-arg", "NOT_DECLARED=x"});
  EXPECT_NE(last_.out.find("Step 1/11 : ARG BASE=busybox\n"), std::string::npos) << last_.out;
  EXPECT_NE(last_.out.find("[Warning] One or more build-args [NOT_DECLARED] were not consumed\n"),
            std::string::npos)
      << last_.out;
  std::string arch = run("args:1", {"cat", "/args.txt"});
  EXPECT_EQ(arch.rfind("busybox hello given ", 0), 0u) << arch;
  EXPECT_TRUE(arch == "busybox hello given amd64 []\n" || arch == "busybox hello given arm64 []\n")
      << arch;
  EXPECT_EQ(run("args:1", {"cat", "/env.txt"}), "from-env\n");
  // ARG values are not image environment.
  EXPECT_EQ(config["config"]["Env"], json({kDefaultPath, "GREETING=from-env"}));
  auto entries = history(config);
  ASSERT_EQ(entries.size(), 8u);
  EXPECT_EQ(entries[0], std::make_pair(std::string("ARG BASE=busybox"), true));
  EXPECT_EQ(entries[2], std::make_pair(std::string("ARG OVERRIDDEN=given"), true));
  EXPECT_EQ(entries[4], std::make_pair(std::string("ARG NOVALUE"), true));
  std::string arch_name = arch.substr(std::string("busybox hello given ").size(), 5);
  EXPECT_EQ(entries[5].first,
            "RUN |5 BASE=busybox GREETING=hello OVERRIDDEN=given TARGETARCH=" + arch_name +
                " NOVALUE= /bin/sh -c echo \"$BASE $GREETING $OVERRIDDEN $TARGETARCH [$NOVALUE]\" "
                "> /args.txt # buildkit");
  // ENV shadows the ARG in the listing.
  EXPECT_EQ(entries[7].first,
            "RUN |5 BASE=busybox GREETING=from-env OVERRIDDEN=given TARGETARCH=" + arch_name +
                " NOVALUE= /bin/sh -c echo $GREETING > /env.txt # buildkit");
}

TEST_F(InstructionTest, ChangingABuildArgRerunsTheRunThatSeesIt) {
  std::string dockerfile = "FROM busybox\nARG V=1\nRUN echo ran-with-$V\n";
  build_ok(dockerfile, "argcache:1");
  build_ok(dockerfile, "argcache:1");
  EXPECT_EQ(count_lines_equal(last_.out, "ran-with-1"), 0) << last_.out;
  build_ok(dockerfile, "argcache:1", {"--build-arg", "V=2"});
  EXPECT_EQ(count_lines_equal(last_.out, "ran-with-2"), 1) << last_.out;
}

TEST_F(InstructionTest, ProxyBuildArgsReachRunButNotHistoryOrCache) {
  std::string dockerfile = "FROM busybox\nRUN echo proxy=$HTTP_PROXY\n";
  json config = build_ok(dockerfile, "proxy:1", {"--build-arg", "HTTP_PROXY=http://p:3128"});
  EXPECT_EQ(count_lines_equal(last_.out, "proxy=http://p:3128"), 1) << last_.out;
  EXPECT_EQ(last_.out.find("not consumed"), std::string::npos) << last_.out;
  EXPECT_EQ(history(config).back().first, "RUN /bin/sh -c echo proxy=$HTTP_PROXY # buildkit");
  build_ok(dockerfile, "proxy:1", {"--build-arg", "HTTP_PROXY=http://other:3128"});
  EXPECT_EQ(count_lines_containing(last_.out, "Using cache"), 1) << last_.out;
}

// ---- multi-stage

TEST_F(InstructionTest, ThreeStagesCopyFromEachOther) {
  json config = build_ok(
      "FROM busybox AS one\n"
      "RUN echo one > /one.txt\n"
      "FROM busybox AS Two\n"
      "COPY --from=one /one.txt /from-one.txt\n"
      "RUN echo two > /two.txt\n"
      "FROM busybox\n"
      "COPY --from=0 /one.txt /final/\n"
      "COPY --from=two /two.txt /from-one.txt /final/\n",
      "stages:1");
  EXPECT_EQ(run("stages:1", {"cat", "/final/one.txt", "/final/two.txt", "/final/from-one.txt"}),
            "one\ntwo\none\n");
  std::vector<std::pair<std::string, bool>> expected = {
      {"COPY /one.txt /final/ # buildkit", false},
      {"COPY /two.txt /from-one.txt /final/ # buildkit", false}};
  EXPECT_EQ(history(config), expected);
}

TEST_F(InstructionTest, TargetBuildsOnlyTheStagesItNeeds) {
  std::string dockerfile =
      "FROM busybox AS base\n"
      "RUN echo base-ran > /base\n"
      "FROM busybox AS unrelated\n"
      "RUN echo unrelated-ran\n"
      "FROM base AS wanted\n"
      "RUN echo wanted-ran && cat /base\n"
      "FROM wanted\n"
      "RUN echo final-ran\n";
  build_ok(dockerfile, "target:1", {"--target", "wanted"});
  EXPECT_EQ(count_lines_equal(last_.out, "base-ran"), 1) << last_.out;
  EXPECT_EQ(count_lines_equal(last_.out, "wanted-ran"), 1) << last_.out;
  EXPECT_EQ(last_.out.find("unrelated"), std::string::npos) << last_.out;
  EXPECT_EQ(last_.out.find("final-ran"), std::string::npos) << last_.out;
  EXPECT_NE(last_.out.find("Step 1/4 : FROM busybox AS base\n"), std::string::npos) << last_.out;

  auto missing = build(dockerfile, "target:2", {"--target", "nosuch"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err, "failed to reach build target nosuch in Dockerfile\n");
}

// A RUN that leaves a mark in the shared cache dir /meet and waits (up to 60 s) for the mark
// of `other`: it can only succeed when the stage that leaves that mark runs at the same time.
std::string rendezvous_run(const std::string& self, const std::string& other) {
  return "RUN --mount=type=cache,id=rendezvous,target=/meet sh -c 'touch /meet/" + self +
         "; i=0; while [ ! -e /meet/" + other +
         " ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done; echo " + self + " > /" +
         self + "-met'\n";
}

TEST_F(InstructionTest, IndependentStagesRunAtTheSameTime) {
  json config = build_ok("FROM busybox AS left\n" + rendezvous_run("left", "right") +
                             "FROM busybox AS right\n" + rendezvous_run("right", "left") +
                             "FROM busybox\n"
                             "COPY --from=left /left-met /\n"
                             "COPY --from=right /right-met /\n",
                         "parallel:1", {"--no-cache"});
  EXPECT_EQ(run("parallel:1", {"cat", "/left-met", "/right-met"}), "left\nright\n");
  // Lines of stages that may overlap say which stage they come from; the final stage, which
  // waits for both, prints as a sequential build does.
  EXPECT_NE(last_.out.find("[left] Step 1/7 : FROM busybox AS left\n"), std::string::npos)
      << last_.out;
  EXPECT_NE(last_.out.find("[right] Step 3/7 : FROM busybox AS right\n"), std::string::npos)
      << last_.out;
  EXPECT_NE(last_.out.find("\nStep 6/7 : COPY --from=left /left-met /\n"), std::string::npos)
      << last_.out;
}

TEST_F(InstructionTest, AFailingStageFailsTheBuildWhileAnotherRuns) {
  auto failed = build(
      "FROM busybox AS slow\n"
      "RUN sleep 1 && echo slow-done\n"
      "FROM busybox AS broken\n"
      "RUN exit 7\n"
      "FROM busybox\n"
      "COPY --from=slow /bin/busybox /a\n"
      "COPY --from=broken /bin/busybox /b\n",
      "parallel:broken");
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_EQ(failed.err, "The command '/bin/sh -c exit 7' returned a non-zero code: 7\n");
  EXPECT_EQ(image_names().find("parallel:broken"), std::string::npos);
  EXPECT_EQ(failed.out.find("Step 5/7"), std::string::npos) << failed.out;
}

TEST_F(InstructionTest, TwoIdenticalBuildsAtOnceRunEachStepOnce) {
  // Each run of the step appends a line to a persistent cache dir, then lingers so that the
  // second build reaches the step while the first is still running it.
  std::string dockerfile =
      "FROM busybox\n"
      "RUN --mount=type=cache,id=counter,target=/count sh -c 'echo ran >> /count/runs; sleep 2'\n";
  ScratchDir second_context;
  write_file_atomic(second_context.path() / "Dockerfile", dockerfile);
  write_file_atomic(context() / "Dockerfile", dockerfile);
  auto first = std::async(std::launch::async, [&] { return build_context("same:1"); });
  auto second = std::async(std::launch::async, [&] {
    return run_slipway(root(), {"build", "-t", "same:2", second_context.path().string()});
  });
  CommandResult a = first.get(), b = second.get();
  ASSERT_EQ(a.exit_code, 0) << a.out << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.out << b.err;
  EXPECT_EQ(count_lines_equal(a.out + b.out, " ---> Using cache"), 1) << a.out << b.out;

  build_ok("FROM busybox\nRUN --mount=type=cache,id=counter,target=/count cat /count/runs\n",
           "same:count", {"--no-cache"});
  EXPECT_EQ(count_lines_equal(last_.out, "ran"), 1) << last_.out;
}

// ---- COPY and ADD

TEST_F(InstructionTest, CopyFilesDirectoriesWildcardsAndDockerignore) {
  write_text(context() / "a.txt", "a\n");
  write_text(context() / "b.txt", "b\n");
  write_text(context() / "notes.md", "ignored\n");
  write_text(context() / "README.md", "kept by exception\n");
  write_text(context() / "dir/sub/c.txt", "c\n");
  write_text(context() / "dir/secret.key", "ignored\n");
  write_text(context() / ".dockerignore", "*.md\n!README.md\n**/*.key\n");
  json config = build_ok(
      "FROM busybox\n"
      "RUN mkdir /run && ln -s /run /var/run\n"
      "WORKDIR /app\n"
      "COPY *.txt ./\n"
      "COPY dir /app/dir\n"
      "COPY . /all/\n"
      "COPY a.txt /var/run/a.txt\n"
      "COPY --chown=nobody:nogroup --chmod=600 b.txt rel/\n",
      "copy:1");
  EXPECT_EQ(run("copy:1", {"sh", "-c",
                           "cd /app && cat a.txt b.txt dir/sub/c.txt && ls dir && ls -A /all && "
                           "cat /run/a.txt && stat -c '%u:%g %a' rel/b.txt"}),
            "a\nb\nc\nsub\n.dockerignore\nDockerfile\nREADME.md\na.txt\nb.txt\ndir\na\n"
            "65534:65534 600\n");
  auto entries = history(config);
  EXPECT_EQ(entries[2], std::make_pair(std::string("COPY *.txt ./ # buildkit"), false));
  EXPECT_EQ(entries.back(),
            std::make_pair(std::string("COPY --chown=nobody:nogroup --chmod=600 b.txt rel/ # "
                                       "buildkit"),
                           false));
}

TEST_F(InstructionTest, CopyCacheFollowsContentNotMtimeOrIgnoredFiles) {
  write_text(context() / "data.txt", "v1\n");
  write_text(context() / "ignored.log", "x\n");
  write_text(context() / ".dockerignore", "*.log\n");
  std::string dockerfile = "FROM busybox\nCOPY . /ctx/\nRUN echo after-copy-ran\n";
  build_ok(dockerfile, "ccache:1");
  // A changed mtime and a changed ignored file keep the cache.
  write_text(context() / "ignored.log", "changed\n");
  fs::last_write_time(context() / "data.txt",
                      fs::last_write_time(context() / "data.txt") - std::chrono::hours(1));
  build_ok(dockerfile, "ccache:1");
  EXPECT_EQ(count_lines_containing(last_.out, "Using cache"), 2) << last_.out;
  // Changed content does not.
  write_text(context() / "data.txt", "v2\n");
  build_ok(dockerfile, "ccache:1");
  EXPECT_EQ(count_lines_equal(last_.out, "after-copy-ran"), 1) << last_.out;
  EXPECT_EQ(run("ccache:1", {"cat", "/ctx/data.txt"}), "v2\n");
}

TEST_F(InstructionTest, CopyChmodTakesSymbolicModes) {
  fs::create_directories(context() / "dir" / "sub");
  write_file_atomic(context() / "run.sh", "echo hi\n");
  write_file_atomic(context() / "dir" / "data", "x\n");
  write_file_atomic(context() / "dir" / "tool", "x\n");
  fs::permissions(context() / "run.sh", fs::perms(0644));
  fs::permissions(context() / "dir" / "data", fs::perms(0600));
  fs::permissions(context() / "dir" / "tool", fs::perms(0700));
  fs::permissions(context() / "dir" / "sub", fs::perms(0700));
  build_ok(
      "FROM busybox\n"
      "COPY --chmod=+x run.sh /run.sh\n"
      "COPY --chmod=u=rwX,go=rX dir /dir\n",
      "chmod:1");
  EXPECT_EQ(
      run("chmod:1", {"stat", "-c", "%a %n", "/run.sh", "/dir/data", "/dir/tool", "/dir/sub"}),
      "755 /run.sh\n644 /dir/data\n755 /dir/tool\n755 /dir/sub\n");
}

TEST_F(InstructionTest, CopyExcludeParentsAndHeredoc) {
  write_text(context() / "src/a/one.txt", "1\n");
  write_text(context() / "src/a/skip.tmp", "t\n");
  write_text(context() / "src/b/two.txt", "2\n");
  build_ok(
      "FROM busybox\n"
      "ARG NAME=world\n"
      "COPY --exclude=**/*.tmp --exclude=b src /excluded/\n"
      "COPY --parents src/*/two.txt /parents/\n"
      "COPY <<EOF /hello.txt\n"
      "hello $NAME\n"
      "EOF\n",
      "copyx:1");
  EXPECT_EQ(
      run("copyx:1", {"sh", "-c", "find /excluded /parents -type f | sort && cat /hello.txt"}),
      "/excluded/a/one.txt\n/parents/src/b/two.txt\nhello world\n");
}

TEST_F(InstructionTest, AddUnpacksLocalTarArchives) {
  write_text(context() / "tree/inner/file.txt", "packed\n");
  auto packed = run_program({"tar", "-czf", (context() / "archive.tar.gz").string(), "-C",
                             (context() / "tree").string(), "."});
  ASSERT_EQ(packed.exit_code, 0) << packed.err;
  write_text(context() / "plain.txt", "plain\n");
  json config = build_ok(
      "FROM busybox\n"
      "ADD archive.tar.gz /unpacked\n"
      "ADD plain.txt /plain/\n"
      "COPY archive.tar.gz /kept/\n",
      "add:1");
  EXPECT_EQ(run("add:1", {"sh", "-c", "cat /unpacked/inner/file.txt /plain/plain.txt && ls /kept"}),
            "packed\nplain\narchive.tar.gz\n");
  ASSERT_FALSE(history(config).empty());
  EXPECT_EQ(history(config)[0],
            std::make_pair(std::string("ADD archive.tar.gz /unpacked # buildkit"), false));
}

TEST_F(InstructionTest, AddUnpacksBzip2AndXzArchivesUnlessUnpackIsFalse) {
  write_text(context() / "tree/inner/file.txt", "packed\n");
  for (const auto& [flag, name] :
       {std::pair<const char*, const char*>{"-cjf", "a.tar.bz2"}, {"-cJf", "a.tar.xz"}}) {
    auto packed = run_program(
        {"tar", flag, (context() / name).string(), "-C", (context() / "tree").string(), "."});
    ASSERT_EQ(packed.exit_code, 0) << packed.err;
  }
  build_ok(
      "FROM busybox\n"
      "ADD a.tar.bz2 /bz2\n"
      "ADD a.tar.xz /xz/\n"
      "ADD --unpack=false a.tar.xz /kept/\n",
      "addz:1");
  EXPECT_EQ(run("addz:1", {"sh", "-c", "cat /bz2/inner/file.txt /xz/inner/file.txt && ls /kept"}),
            "packed\npacked\na.tar.xz\n");
}

TEST_F(InstructionTest, AddExcludeAndCopyFromAnImageInTheStore) {
  write_text(context() / "dir/keep.txt", "keep\n");
  write_text(context() / "dir/drop.tmp", "drop\n");
  build_ok(
      "FROM busybox\n"
      "ADD --exclude=*.tmp dir /added/\n"
      "COPY --from=busybox /bin/busybox /from-image/busybox\n",
      "addx:1");
  EXPECT_EQ(run("addx:1", {"sh", "-c", "ls /added && /from-image/busybox echo from-image"}),
            "keep.txt\nfrom-image\n");
}

TEST_F(InstructionTest, CopyParentsKeepsThePathAfterThePivot) {
  write_text(context() / "src/a/one.txt", "1\n");
  write_text(context() / "src/b/two.txt", "2\n");
  build_ok("FROM busybox\nCOPY --parents src/./a/one.txt src/./b /pivot/\n", "pivot:1");
  EXPECT_EQ(run("pivot:1", {"sh", "-c", "find /pivot -type f | sort"}),
            "/pivot/a/one.txt\n/pivot/b/two.txt\n");
}

TEST_F(InstructionTest, StopsignalExposeChownAndChmodExpandVariables) {
  write_text(context() / "f.txt", "f\n");
  json config = build_ok(
      "FROM busybox\n"
      "ARG SIGNAL=SIGUSR1\n"
      "ENV PORTS=\"80 443/udp\" LAST=8001\n"
      "STOPSIGNAL $SIGNAL\n"
      "EXPOSE $PORTS 8000-${LAST}\n"
      "ARG OWNER=123:456 MODE=0640\n"
      "COPY --chown=$OWNER --chmod=${MODE} f.txt /f.txt\n",
      "expand:1");
  EXPECT_EQ(config["config"]["StopSignal"], "SIGUSR1");
  EXPECT_EQ(config["config"]["ExposedPorts"], json({{"80/tcp", json::object()},
                                                    {"443/udp", json::object()},
                                                    {"8000/tcp", json::object()},
                                                    {"8001/tcp", json::object()}}));
  auto entries = history(config);
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[2].first, "STOPSIGNAL SIGUSR1");
  EXPECT_EQ(entries[3].first, "EXPOSE [80/tcp 443/udp 8000/tcp 8001/tcp]");
  EXPECT_EQ(entries[5].first, "COPY --chown=123:456 --chmod=0640 f.txt /f.txt # buildkit");
  EXPECT_EQ(run("expand:1", {"stat", "-c", "%u:%g %a", "/f.txt"}), "123:456 640\n");
}

// ---- COPY --link

TEST_F(InstructionTest, CopyLinkWritesOnAnEmptyTree) {
  write_text(context() / "f.txt", "linked\n");
  build_ok(
      "FROM busybox\n"
      "RUN mkdir -m 700 /app && chown nobody /app && mkdir /real && ln -s /real /link\n"
      "COPY --link f.txt /app/\n"
      "COPY --link f.txt /link/\n"
      "COPY f.txt /unlinked/\n",
      "link:1");
  // The dest dirs are the layer's own (0755 root), and a symlink in the image below is not
  // followed: the layer's directory replaces it.
  EXPECT_EQ(run("link:1", {"sh", "-c",
                           "stat -c '%a %u' /app && cat /app/f.txt && test -d /link && "
                           "! test -L /link && cat /link/f.txt && ls -A /real | wc -l"}),
            "755 0\nlinked\nlinked\n0\n");
}

TEST_F(InstructionTest, CopyLinkStaysCachedWhenAnEarlierStepChanges) {
  write_text(context() / "f.txt", "linked\n");
  std::string dockerfile =
      "FROM busybox\n"
      "ARG V=1\n"
      "RUN echo $V > /v.txt\n"
      "COPY --link f.txt /linked/\n"
      "COPY f.txt /plain/\n";
  build_ok(dockerfile, "linkcache:1");
  build_ok(dockerfile, "linkcache:2", {"--build-arg", "V=2"});
  // ARG and RUN run again; the linked COPY is reused on the new RUN layer, the plain one is not.
  EXPECT_EQ(count_lines_equal(last_.out, " ---> Using cache"), 1) << last_.out;
  EXPECT_NE(last_.out.find("COPY --link f.txt /linked/\n ---> Using cache\n"), std::string::npos)
      << last_.out;
  EXPECT_EQ(run("linkcache:2", {"cat", "/v.txt", "/linked/f.txt", "/plain/f.txt"}),
            "2\nlinked\nlinked\n");
  json first = image_config(root(), "linkcache:1"), second = image_config(root(), "linkcache:2");
  // The same layer content (diff_id) on another parent: base, RUN, COPY --link, COPY.
  ASSERT_EQ(second["rootfs"]["diff_ids"].size(), 4u);
  EXPECT_NE(first["rootfs"]["diff_ids"][1], second["rootfs"]["diff_ids"][1]);
  EXPECT_EQ(first["rootfs"]["diff_ids"][2], second["rootfs"]["diff_ids"][2]);
  // A changed source is a miss.
  write_text(context() / "f.txt", "changed\n");
  build_ok(dockerfile, "linkcache:3", {"--build-arg", "V=2"});
  EXPECT_EQ(run("linkcache:3", {"cat", "/linked/f.txt"}), "changed\n");
}

TEST_F(InstructionTest, CopyFromStaysCachedWhenOtherFilesOfTheSourceStageChange) {
  std::string dockerfile =
      "FROM busybox AS source\n"
      "ARG V=1\n"
      "RUN echo $V > /other.txt && echo same > /copied.txt\n"
      "FROM busybox\n"
      "COPY --from=source /copied.txt /\n"
      "RUN echo after-copy-ran\n";
  build_ok(dockerfile, "copyfrom:1");
  build_ok(dockerfile, "copyfrom:2", {"--build-arg", "V=2"});
  EXPECT_NE(last_.out.find("COPY --from=source /copied.txt /\n ---> Using cache\n"),
            std::string::npos)
      << last_.out;
  EXPECT_EQ(count_lines_equal(last_.out, "after-copy-ran"), 0) << last_.out;
  // A change to what is copied is a miss.
  build_ok(
      "FROM busybox AS source\nRUN echo changed > /copied.txt\n"
      "FROM busybox\nCOPY --from=source /copied.txt /\nRUN echo after-copy-ran\n",
      "copyfrom:3");
  EXPECT_EQ(count_lines_equal(last_.out, "after-copy-ran"), 1) << last_.out;
  EXPECT_EQ(run("copyfrom:3", {"cat", "/copied.txt"}), "changed\n");
}

TEST_F(InstructionTest, OnbuildTriggersOfABaseStageWaitForTheStagesTheyRead) {
  // The trigger runs in the last stage and copies from `helper`: that stage must be built first,
  // although neither `base` nor the last stage's own lines name it.
  build_ok(
      "FROM busybox AS base\n"
      "ONBUILD COPY --from=helper /helper.txt /\n"
      "FROM busybox AS helper\n"
      "RUN sleep 1 && echo helper > /helper.txt\n"
      "FROM base\n"
      "RUN cat /helper.txt\n",
      "onbuildstage:1");
  EXPECT_EQ(count_lines_equal(last_.out, "helper"), 1) << last_.out;
}

TEST_F(InstructionTest, CopySourcesCannotLeaveTheContext) {
  write_text(scratch_.path() / "outside.txt", "secret\n");
  write_text(context() / "inside.txt", "inside\n");
  build_ok("FROM busybox\nCOPY ../inside.txt /x/\n", "confined:1");
  EXPECT_EQ(run("confined:1", {"cat", "/x/inside.txt"}), "inside\n");
  auto failed = build("FROM busybox\nCOPY ../outside.txt /x/\n", "confined:2");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.err,
            "Dockerfile:2:1: failed to compute cache key: \"/outside.txt\": not found (missing "
            "from the build context or excluded by .dockerignore)\n");
}

// ---- bad input: one line with the position, exit 1, nothing tagged, the store still usable.

struct BadInputCase {
  const char* name;
  const char* dockerfile;
  const char* expected_error;
};

void PrintTo(const BadInputCase& input, std::ostream* os) {
  *os << input.name;
}

class BadInstructionTest : public InstructionTest,
                           public ::testing::WithParamInterface<BadInputCase> {};

TEST_P(BadInstructionTest, FailsWithAClearError) {
  const auto& param = GetParam();
  auto failed = build(param.dockerfile, "bad:1");
  EXPECT_EQ(failed.exit_code, 1) << failed.out << failed.err;
  EXPECT_EQ(failed.err, std::string(param.expected_error) + "\n") << failed.out;
  EXPECT_EQ(image_names(), "busybox:latest\n");
  build_ok("FROM busybox\nCOPY Dockerfile /fine\n", "good:1");
  EXPECT_TRUE(fs::is_empty(root() / "tmp"));
}

INSTANTIATE_TEST_SUITE_P(
    Errors, BadInstructionTest,
    ::testing::Values(
        BadInputCase{"UnknownFlag", "FROM busybox\nCOPY --form=x a /b\n",
                     "Dockerfile:2:6: unknown flag: --form (did you mean --from?)"},
        BadInputCase{"FlagOnInstructionWithout", "FROM busybox\nUSER --x=1 root\n",
                     "Dockerfile:2:6: unknown flag: --x"},
        BadInputCase{"DuplicateFlag", "FROM busybox\nCOPY --chown=1 --chown=2 Dockerfile /b\n",
                     "Dockerfile:2:16: duplicate flag specified: --chown"},
        BadInputCase{"MissingFlagValue", "FROM busybox\nCOPY --chown Dockerfile /b\n",
                     "Dockerfile:2:6: missing a value on flag: --chown"},
        BadInputCase{"BadBoolFlag", "FROM busybox\nCOPY --link=maybe Dockerfile /b\n",
                     "Dockerfile:2:6: expecting boolean value for flag --link, not: maybe"},
        BadInputCase{"CopyFromUndefinedStage", "FROM busybox\nCOPY --from=nosuch /a /b\n",
                     "Dockerfile:2:6: --from=nosuch: no stage or image named \"nosuch\" (a stage "
                     "must be defined before it is used; an image must be imported or pulled "
                     "first)"},
        BadInputCase{"StageNameReused", "FROM busybox AS x\nFROM busybox AS X\n",
                     "Dockerfile:2:1: duplicate stage name \"x\": stage names should be unique"},
        BadInputCase{"EnvWithoutValue", "FROM busybox\nENV ONLYKEY\n",
                     "Dockerfile:2:1: ENV must have two arguments"},
        BadInputCase{"ShellNotJson", "FROM busybox\nSHELL /bin/bash -c\n",
                     "Dockerfile:2:1: SHELL: SHELL requires the arguments to be in JSON form"},
        BadInputCase{"CopySourceMissing", "FROM busybox\nCOPY missing.txt /b\n",
                     "Dockerfile:2:1: failed to compute cache key: \"/missing.txt\": not found "
                     "(missing from the build context or excluded by .dockerignore)"},
        BadInputCase{"HealthcheckBadType", "FROM busybox\nHEALTHCHECK FOO true\n",
                     "Dockerfile:2:1: HEALTHCHECK: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"},
        BadInputCase{"HealthcheckShortInterval",
                     "FROM busybox\nHEALTHCHECK --interval=1us CMD true\n",
                     "Dockerfile:2:13: Interval \"interval\" cannot be less than 1ms"},
        BadInputCase{"HealthcheckNegativeRetries",
                     "FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n",
                     "Dockerfile:2:13: --retries cannot be negative (-1)"},
        BadInputCase{"BadStopSignal", "FROM busybox\nSTOPSIGNAL SIGNOPE\n",
                     "Dockerfile:2:1: STOPSIGNAL: Invalid signal: SIGNOPE"},
        BadInputCase{"InvalidStageName", "FROM busybox AS 1st\n",
                     "Dockerfile:1:1: invalid name for build stage: \"1st\", name can't start "
                     "with a number or contain symbols"}),
    [](const auto& case_info) { return case_info.param.name; });

}  // namespace
}  // namespace slipway::testing
