// TarBuilder: tar streams written entry by entry with libarchive, for tests that need archives a
// well-behaved tool would never make (hostile names, devices, links out of the tree).
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/types.h>

#include <memory>
#include <string>

namespace slipway::testing {

class TarBuilder {
 public:
  TarBuilder() : archive_(archive_write_new(), archive_write_free) {
    archive_write_set_format_pax_restricted(archive_.get());
    archive_write_set_bytes_in_last_block(archive_.get(), 1);
    archive_write_open(archive_.get(), &bytes_, nullptr, &TarBuilder::append, nullptr);
  }
  TarBuilder& file(const std::string& name, const std::string& content, mode_t perm = 0644) {
    auto e = make(name, AE_IFREG, perm);
    archive_entry_set_size(e.get(), static_cast<la_int64_t>(content.size()));
    archive_write_header(archive_.get(), e.get());
    archive_write_data(archive_.get(), content.data(), content.size());
    return *this;
  }
  TarBuilder& dir(const std::string& name, mode_t perm = 0755) {
    archive_write_header(archive_.get(), make(name, AE_IFDIR, perm).get());
    return *this;
  }
  TarBuilder& symlink(const std::string& name, const std::string& target) {
    auto e = make(name, AE_IFLNK, 0777);
    archive_entry_set_symlink(e.get(), target.c_str());
    archive_write_header(archive_.get(), e.get());
    return *this;
  }
  TarBuilder& device(const std::string& name, mode_t type, unsigned major_number,
                     unsigned minor_number) {
    auto e = make(name, type, 0666);
    archive_entry_set_rdevmajor(e.get(), major_number);
    archive_entry_set_rdevminor(e.get(), minor_number);
    archive_write_header(archive_.get(), e.get());
    return *this;
  }
  TarBuilder& hardlink(const std::string& name, const std::string& target) {
    auto e = make(name, AE_IFREG, 0644);
    archive_entry_set_hardlink(e.get(), target.c_str());
    archive_write_header(archive_.get(), e.get());
    return *this;
  }
  std::string finish() {
    archive_write_close(archive_.get());
    return bytes_;
  }

 private:
  using EntryPtr = std::unique_ptr<archive_entry, decltype(&archive_entry_free)>;
  static EntryPtr make(const std::string& name, mode_t type, mode_t perm) {
    EntryPtr e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), type);
    archive_entry_set_perm(e.get(), perm);
    archive_entry_set_mtime(e.get(), 1600000000, 0);
    return e;
  }
  static la_ssize_t append(archive*, void* client, const void* data, size_t size) {
    static_cast<std::string*>(client)->append(static_cast<const char*>(data), size);
    return static_cast<la_ssize_t>(size);
  }
  std::unique_ptr<archive, decltype(&archive_write_free)> archive_;
  std::string bytes_;
};

}  // namespace slipway::testing
