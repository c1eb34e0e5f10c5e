// The Dockerfile corpus in testdata/corpus: real-world style Dockerfiles, one ctest case each.
// testdata/corpus/MANIFEST is read when the test runs. Every entry must parse; "buildable"
// entries are built with the real binary on an imported busybox base (one store per test), their
// image config is checked against the entry's expect.json and, where MANIFEST gives an expected
// output, `slipway run --rm` must print it. "known-failure" entries are Dockerfiles docker builds
// but slipway does not yet, and "known-difference" ones build to an image that differs from
// docker's: the test asserts today's failure message or values, so that a fix shows up.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "common/fs.h"
#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path& corpus_dir() {
  static const fs::path dir = fs::path(SLIPWAY_SOURCE_DIR) / "testdata/corpus";
  return dir;
}

struct Entry {
  std::string name;
  std::string kind;    // parse-only, buildable, known-failure or known-difference
  std::string detail;  // run output (buildable), failure message or difference (known-*)
};

void PrintTo(const Entry& entry, std::ostream* out) {
  *out << entry.name << " " << entry.kind;
}

std::vector<Entry> load_manifest() {
  std::vector<Entry> entries;
  std::ifstream in(corpus_dir() / "MANIFEST");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    Entry entry;
    words >> entry.name >> entry.kind;
    std::getline(words >> std::ws, entry.detail);
    entries.push_back(entry);
  }
  return entries;
}

// MANIFEST writes a newline in an expected output as the two characters \n.
std::string unescape_newlines(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string trim_trailing_whitespace(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// The number of instructions in a Dockerfile as the reference dump shows them: one top-level
// line per instruction, each starting with "(" at column 0.
int dump_instruction_count(const std::string& dump) {
  int count = 0;
  std::istringstream lines(dump);
  for (std::string line; std::getline(lines, line);) count += line.rfind('(', 0) == 0;
  return count;
}

class CorpusTest : public ::testing::TestWithParam<Entry> {
 protected:
  fs::path root() const { return scratch_.path() / "store"; }
  fs::path entry_dir() const { return corpus_dir() / GetParam().name; }
  std::string tag() const { return "corpus-" + GetParam().name + ":test"; }

  void import_busybox() {
    auto imported = run_slipway(root(), {"import", busybox_rootfs_tarball().string(), "busybox"});
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  bool image_listed(const std::string& repository) {
    auto listed = run_slipway(root(), {"images"});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    return listed.out.find("\n" + repository + " ") != std::string::npos;
  }

  ScratchDir scratch_;
};

TEST_P(CorpusTest, Parses) {
  const fs::path dockerfile = entry_dir() / "Dockerfile";
  ASSERT_TRUE(fs::exists(dockerfile)) << dockerfile;
  auto dumped = run_slipway(root(), {"parse", "--format", "dump", "-f", dockerfile.string()});
  ASSERT_EQ(dumped.exit_code, 0) << dumped.err;
  EXPECT_GT(dump_instruction_count(dumped.out), 1) << dumped.out;

  // The typed AST agrees with the dump about how many instructions there are.
  auto typed = run_slipway(root(), {"parse", "--format", "json", "-f", dockerfile.string()});
  ASSERT_EQ(typed.exit_code, 0) << typed.err;
  json ast = json::parse(typed.out, nullptr, false);
  ASSERT_FALSE(ast.is_discarded()) << typed.out;
  EXPECT_FALSE(ast.dump().empty());

  // Each entry says what it models in a header comment.
  std::string text = read_file(dockerfile);
  EXPECT_NE(text.find("# Models "), std::string::npos) << "no '# Models ...' header comment";
}

TEST_P(CorpusTest, BuildsOfflineWhereMarked) {
  const Entry& entry = GetParam();
  if (entry.kind == "parse-only") GTEST_SKIP() << "parse-only: needs a distro image or network";
  ASSERT_TRUE(entry.kind == "buildable" || entry.kind == "known-failure" ||
              entry.kind == "known-difference")
      << entry.kind;
  import_busybox();
  if (HasFatalFailure()) return;
  auto built = run_slipway(root(), {"build", "-t", tag(), entry_dir().string()});

  if (entry.kind == "known-failure") {
    EXPECT_EQ(built.exit_code, 1) << built.out << built.err;
    EXPECT_NE(built.err.find(entry.detail), std::string::npos)
        << "the known failure changed; update MANIFEST\n"
        << built.out << built.err;
    EXPECT_NE(built.err.find("Dockerfile:"), std::string::npos) << built.err;
    EXPECT_FALSE(image_listed("corpus-" + entry.name)) << "a failed build tagged its image";
    return;
  }

  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_NE(built.out.find("Successfully tagged " + tag() + "\n"), std::string::npos) << built.out;
  EXPECT_TRUE(image_listed("corpus-" + entry.name));

  json config = image_config(root(), tag());

  // Every non-empty history entry has exactly one layer, in order.
  size_t layered = 0;
  for (const auto& item : config["history"]) layered += !item.value("empty_layer", false);
  EXPECT_EQ(config["rootfs"]["diff_ids"].size(), layered) << config.dump(2);

  const fs::path expect_file = entry_dir() / "expect.json";
  ASSERT_TRUE(fs::exists(expect_file)) << "buildable entries need an expect.json";
  json expect = json::parse(read_file(expect_file));
  // Fields where slipway differs from docker today: their current values are asserted instead,
  // and must still differ from docker's (so that a fix makes this test ask for an update).
  const json today = expect.value("slipway_today", json::object());
  if (entry.kind == "known-difference") {
    EXPECT_FALSE(today.empty()) << "known-difference entries need slipway_today in expect.json";
  } else {
    EXPECT_TRUE(today.empty()) << "slipway_today is for known-difference entries";
  }

  for (const auto& [key, value] : expect.items()) {
    if (key == "layers") {
      EXPECT_EQ(config["rootfs"]["diff_ids"].size(), value.get<size_t>()) << config.dump(2);
    } else if (key == "config") {
      // A subset of the image's Config; null means the field is absent.
      const json& container = config["config"];
      for (const auto& [field, docker_value] : value.items()) {
        json wanted = docker_value;
        if (today.contains("config") && today["config"].contains(field)) {
          wanted = today["config"][field];
          EXPECT_NE(container.value(field, json()), docker_value)
              << field << " now matches docker: known difference fixed, update the corpus";
        }
        if (wanted.is_null()) {
          EXPECT_TRUE(!container.contains(field) || container[field].is_null())
              << field << ": " << container.dump(2);
        } else {
          EXPECT_EQ(container.value(field, json()), wanted) << field << ": " << container.dump(2);
        }
      }
    } else if (key != "output" && key != "slipway_today") {
      EXPECT_EQ(config.value(key, json()), value) << key;
    }
  }

  std::string output = entry.kind == "buildable" ? unescape_newlines(entry.detail) : "";
  output = expect.value("output", output);
  if (!output.empty()) {
    auto ran = run_slipway(root(), {"run", "--rm", tag()});
    if (today.contains("output")) {
      EXPECT_EQ(trim_trailing_whitespace(ran.out), today["output"].get<std::string>()) << ran.err;
      if (today.contains("run_error")) {
        EXPECT_NE(ran.err.find(today["run_error"].get<std::string>()), std::string::npos)
            << ran.err;
      }
      EXPECT_NE(trim_trailing_whitespace(ran.out), output)
          << "the output now matches docker: known difference fixed, update the corpus";
    } else {
      EXPECT_EQ(ran.exit_code, 0) << ran.out << ran.err;
      EXPECT_EQ(trim_trailing_whitespace(ran.out), output) << ran.err;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, CorpusTest, ::testing::ValuesIn(load_manifest()),
                         [](const ::testing::TestParamInfo<Entry>& param_info) {
                           std::string name = param_info.param.name;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// The manifest and the directories agree, and the corpus is as large as issue 3 asks.
TEST(CorpusManifest, ListsEveryDirectoryOnceWithAKnownKind) {
  std::set<std::string> listed;
  int buildable = 0;
  for (const auto& entry : load_manifest()) {
    EXPECT_TRUE(listed.insert(entry.name).second) << "listed twice: " << entry.name;
    EXPECT_TRUE(entry.kind == "parse-only" || entry.kind == "buildable" ||
                entry.kind == "known-failure" || entry.kind == "known-difference")
        << entry.name << ": " << entry.kind;
    if (entry.kind.starts_with("known-")) {
      EXPECT_FALSE(entry.detail.empty()) << entry.name;
    }
    buildable += entry.kind != "parse-only";
  }
  std::set<std::string> present;
  for (const auto& item : fs::directory_iterator(corpus_dir()))
    if (item.is_directory()) present.insert(item.path().filename().string());
  EXPECT_EQ(listed, present);
  EXPECT_GE(listed.size(), 30u);
  EXPECT_GE(buildable, 15);
}

}  // namespace
}  // namespace slipway::testing
