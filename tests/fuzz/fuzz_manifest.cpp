// Manifest, index and config parsing, as the store reads them (Store::load_image, and the OCI
// path of Store::load_archive, which walks index.json -> image index -> manifest -> config).
//
// Input: index.json, a NUL, the manifest (or an image index), a NUL, the config. A fuzzer cannot
// produce sha256 digests, so the harness stores the blobs and writes their digests where the
// input says "@config" (in the manifest) and "@manifest" (in the index): the seeds and the
// dictionary use those tokens, and mutations beyond them reach the parsers.
#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "store/digest.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

std::string replace_all(std::string_view text, std::string_view token, std::string_view value) {
  std::string out;
  for (size_t at; (at = text.find(token)) != std::string_view::npos;) {
    out.append(text.substr(0, at)).append(value);
    text.remove_prefix(at + token.size());
  }
  return out.append(text);
}

// Writes a tar of (name, content) pairs to `path`.
void write_tar(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& files) {
  std::unique_ptr<archive, decltype(&archive_write_free)> tar(archive_write_new(),
                                                              archive_write_free);
  archive_write_set_format_pax_restricted(tar.get());
  if (archive_write_open_filename(tar.get(), path.c_str()) != ARCHIVE_OK) std::abort();
  for (const auto& [name, content] : files) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                        archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    if (archive_write_header(tar.get(), entry.get()) != ARCHIVE_OK) std::abort();
    archive_write_data(tar.get(), content.data(), content.size());
  }
  archive_write_close(tar.get());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slipway;
  auto parts = fuzz::split(fuzz::as_text(data, size), '\0', 3);
  const std::string config(parts[2]);
  const std::string config_digest = store::sha256_digest(config);
  const std::string manifest = replace_all(parts[1], "@config", config_digest);
  const std::string manifest_digest = store::sha256_digest(manifest);
  const std::string index = replace_all(parts[0], "@manifest", manifest_digest);

  TempDir scratch(fuzz::scratch_parent(), "fuzz-manifest-");
  store::Store store(scratch.path() / "root");
  store.write_blob(config);
  store.write_blob(manifest);
  fuzz::expect_clean_errors([&] {
    store::Image image = store.load_image(manifest_digest);
    (void)image.diff_ids();
  });

  const std::string tar = (scratch.path() / "oci.tar").string();
  write_tar(tar, {{"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
                  {"index.json", index},
                  {"blobs/sha256/" + manifest_digest.substr(7), manifest},
                  {"blobs/sha256/" + config_digest.substr(7), config}});
  fuzz::expect_clean_errors([&] {
    for (const auto& name : store.load_archive(tar)) (void)name;
    for (const auto& named : store.list_images()) (void)named.image.diff_ids();
  });
  return 0;
}
