// Private helpers shared by the layer sources (layer.cpp, layer_codec.cpp, layer_apply.cpp): RAII
// owners for libarchive handles and the names of the overlay/OCI whiteout conventions.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <string>
#include <string_view>

namespace slipway::store::layer_detail {

struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct ArchiveWriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ArchiveEntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

using ArchiveReadPtr = std::unique_ptr<archive, ArchiveReadDeleter>;
using ArchiveWritePtr = std::unique_ptr<archive, ArchiveWriteDeleter>;
using ArchiveEntryPtr = std::unique_ptr<archive_entry, ArchiveEntryDeleter>;

// OCI image-spec layer.md names.
inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
// overlayfs(5): a directory with this xattr set to "y" hides the lower layers' contents.
inline constexpr const char* kOverlayOpaqueXattr = "trusted.overlay.opaque";
// Every overlayfs-private xattr (origin, impure, redirect, metacopy, ...) starts with this; they
// describe one overlay mount and must never travel in a layer.
inline constexpr std::string_view kOverlayXattrPrefix = "trusted.overlay.";

// libarchive's last error text for `a`, never null.
inline std::string archive_error_text(archive* a) {
  const char* text = archive_error_string(a);
  return text != nullptr ? text : "unknown libarchive error";
}

}  // namespace slipway::store::layer_detail
