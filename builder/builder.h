// Public interface of builder/: turns a Dockerfile and a build context into an image in the
// store, one cached step at a time, printing docker's classic build output.
//
// A step's cache key never depends on the machine: the parent image's ID (a digest of its
// config, so of its layers' content), the expanded instruction, the environment and build args
// in effect, the layer compression when not gzip, SOURCE_DATE_EPOCH when set, and for COPY/ADD
// the sources' content digest (path, type, mode, owner, bytes; never mtimes, inodes or the
// store's path). So the same keys hit in a cache exported from another store
// (--cache-from/--cache-to, registry/build_cache.h), and the images they give have the same IDs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "store/store.h"

namespace slipway::builder {

struct BuildOptions {
  std::filesystem::path context_dir;
  std::filesystem::path dockerfile;  // empty: <context_dir>/Dockerfile
  std::vector<std::string> tags;     // NAME[:TAG]
  bool no_cache = false;
  // --build-arg K=V, in order; a later one for the same K wins. "K" alone has been resolved from
  // the environment by the caller (or left out when unset there).
  std::vector<std::pair<std::string, std::string>> build_args;
  std::string target;  // --target: the stage to build ("" = the last one)
  // When FROM images are fetched from their registry: kMissing (docker's behaviour) pulls only
  // what the store lacks, kAlways refreshes every base image, kNever uses the store alone.
  enum class Pull { kMissing, kAlways, kNever };
  Pull pull = Pull::kMissing;
  // --secret id=ID,src=FILE or id=ID,env=VAR: what RUN --mount=type=secret mounts. Never part
  // of a cache key, a layer or the history.
  struct Secret {
    std::string id;
    std::filesystem::path file;  // the secret's value is this file's content...
    std::string env;             // ...or this environment variable's value (when file is empty)
  };
  std::vector<Secret> secrets;
  // --compression: how new layers are stored. Part of every cache key except gzip's (the
  // default, so the keys of earlier builds stay valid): a cache hit never hands back layers of
  // another compression.
  store::Compression compression = store::Compression::kGzip;
  // docker build -q: no progress lines; a RUN step's output is kept and written to stderr only
  // when the step fails. The caller prints the image ID.
  bool quiet = false;
  // SOURCE_DATE_EPOCH (from the environment, or --build-arg, which wins), in seconds: the
  // config's created time and every history time, and the mtimes in new layers are clamped to
  // it. With it, the same build on two stores gives the same image ID and manifest digest.
  std::optional<int64_t> source_date_epoch;
  // --cache-from (read once, before the first step; a cache that cannot be read is a one-line
  // warning on stderr and the build goes on without it) and --cache-to (written after the
  // build), in the forms registry/build_cache.h describes. A step found there is a cache hit
  // like a local one: its image is put together from the record, and its layer is downloaded
  // only when something needs the files (a later step that runs, COPY --from the stage, USER
  // names, the final image).
  std::vector<std::string> cache_from, cache_to;
  // --label K=V: set on the final image's config (no history entry, as BuildKit does).
  std::vector<std::pair<std::string, std::string>> labels;
};

struct BuildResult {
  store::Image image;
  int steps_run = 0;       // steps that executed (a cache miss)
  int steps_cached = 0;    // steps taken from the build cache
  int layers_fetched = 0;  // layers downloaded from a --cache-from cache
};

// A build that failed. what() is the whole one-line message, already in the form the CLI prints:
// "Dockerfile:LINE:COL: message" for errors tied to a place in the Dockerfile, docker's wording
// otherwise ("The command '/bin/sh -c false' returned a non-zero code: 1").
class BuildError : public Error {
 public:
  explicit BuildError(const std::string& message, int exit_code = 1)
      : Error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Builds and tags the image. Progress goes to `out`; RUN steps write straight to the process's
// stdout/stderr (unless options.quiet). Nothing is tagged unless every step succeeded.
BuildResult build(store::Store& store, const BuildOptions& options, std::ostream& out);

// The current time in the RFC 3339 form image configs use ("2026-11-23T10:00:00.123456789Z").
std::string timestamp_now();
// A time given in seconds since the epoch, in the same form without fractions
// ("1970-01-01T00:00:00Z"), as BuildKit writes SOURCE_DATE_EPOCH.
std::string timestamp_of(int64_t seconds);
// Parses a SOURCE_DATE_EPOCH value: decimal seconds. Throws Error naming the value otherwise.
int64_t parse_source_date_epoch(const std::string& value);

}  // namespace slipway::builder
