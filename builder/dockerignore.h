// .dockerignore handling as docker does it (moby/patternmatcher + ignorefile): reading the file
// that applies to a build, cleaning its patterns, and matching context paths against them with
// `**`, `!` exceptions and "last match wins". Also Go's filepath.Match and path.Clean, which COPY
// source wildcards use.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::builder {

// Go's path.Clean for '/'-separated paths ("" -> ".", "a//b/../c/" -> "a/c", "/.." -> "/").
std::string clean_path(std::string_view path);

// Go's filepath.Match on '/'-separated names: `*` (no '/'), `?`, `[a-z]`, `[^...]`, `\x`.
// Throws slipway::Error naming the pattern when it is malformed (e.g. "[", "[]a]", "a\").
bool glob_match(std::string_view pattern, std::string_view name);

// Whether a path component holds an unescaped `*`, `?` or `[` (fsutil containsWildcards).
bool has_wildcards(std::string_view component);

// The compiled patterns of one .dockerignore (or of COPY --exclude values).
class IgnoreRules {
 public:
  IgnoreRules() = default;
  // Each pattern as a .dockerignore line after ignorefile processing; whitespace is trimmed and
  // the pattern cleaned again, a leading '!' makes an exception. Throws Error for "!" alone or a
  // malformed pattern; `origin` names where the patterns came from in that message.
  explicit IgnoreRules(const std::vector<std::string>& patterns,
                       std::string_view origin = ".dockerignore");

  // Parses .dockerignore text: BOM stripped, `#` comments in column 1, blank lines skipped,
  // trimmed, filepath.Clean'd, one leading '/' dropped, `!` exceptions.
  static IgnoreRules parse(std::string_view text, std::string_view origin = ".dockerignore");
  // The patterns ignorefile.ReadAll returns for `text` (before compilation), for inspection.
  static std::vector<std::string> read_patterns(std::string_view text);
  // Reads and parses a file; a missing file gives no rules.
  static IgnoreRules load(const std::filesystem::path& file);

  bool empty() const { return patterns_.empty(); }
  bool has_exceptions() const { return has_exceptions_; }
  // The cleaned patterns, exceptions with their leading '!'.
  std::vector<std::string> patterns() const;

  // Per-pattern results of a directory, handed down to its entries while walking a tree
  // (patternmatcher MatchInfo). A default-constructed state means "no parent information".
  struct MatchState {
    std::vector<bool> matched;
  };

  // Whether `path` ('/'-separated, relative to the context root) is excluded, given the state of
  // its parent directory; fills `state` for the path's own children when non-null
  // (MatchesUsingParentResults).
  bool excluded(std::string_view path, const MatchState& parent, MatchState* state) const;
  // The same without parent information (MatchesOrParentMatches). "." is never excluded.
  bool excluded(std::string_view path) const;
  // The state of `dir` computed from the root down, for starting a walk below it.
  MatchState state_for(std::string_view dir) const;

  // Whether a walk must still enter the excluded directory `dir` because an exception could
  // re-include something below it (fsutil: any exception with wildcards, or one under `dir/`).
  bool may_reinclude_below(std::string_view dir) const;

  struct Pattern;  // compiled form, defined in dockerignore.cpp

 private:
  std::vector<std::shared_ptr<const Pattern>> patterns_;
  bool has_exceptions_ = false;
  bool wildcard_exceptions_ = false;
};

// The ignore file that applies to a build: `<Dockerfile path>.dockerignore` beside the Dockerfile
// (e.g. `app.Dockerfile.dockerignore`) when it exists, else `<context>/.dockerignore` when it
// exists, else nothing. An empty `dockerfile` means `<context>/Dockerfile`.
std::optional<std::filesystem::path> find_ignore_file(const std::filesystem::path& dockerfile,
                                                      const std::filesystem::path& context_dir);

// find_ignore_file + IgnoreRules::load; no file gives empty rules.
IgnoreRules load_ignore_rules(const std::filesystem::path& dockerfile,
                              const std::filesystem::path& context_dir);

}  // namespace slipway::builder
