// Image references: docker's grammar (github.com/distribution/reference) and its normalization.
//
// Every name slipway reads or shows goes through here, so that the forms people type reach one
// image: `ubuntu`, `library/ubuntu`, `docker.io/ubuntu`, `docker.io/library/ubuntu` and
// `index.docker.io/library/ubuntu` are one repository (docker.io/library/ubuntu), shown in the
// familiar form docker prints (`ubuntu`). The store keys its names by the familiar form; the
// registry client talks to the registry in the full form. Lives in store/ because the store owns
// image names; registry/ uses it through registry::Reference.
#pragma once

#include <string>
#include <string_view>

namespace slipway::store {

// A docker image reference, normalized the way docker does it.
struct Reference {
  std::string domain;  // "docker.io", "127.0.0.1:5000", "localhost"
  std::string path;    // "library/ubuntu", "a/b"
  std::string tag;     // "latest" when neither a tag nor a digest was given; "" for name@digest
  std::string digest;  // "sha256:<hex>" or ""
  bool tag_defaulted = false;  // no tag and no digest was written: tag is "latest"

  // Parses and normalizes `text`. Throws Error("invalid reference format: <text>: <reason>").
  static Reference parse(std::string_view text);

  std::string name() const;             // "docker.io/library/ubuntu"
  std::string familiar_name() const;    // "ubuntu", "alice/app", "127.0.0.1:5000/bb"
  std::string string() const;           // name() with ":tag" and/or "@digest"
  std::string familiar_string() const;  // familiar_name() with ":tag" and/or "@digest"
  std::string tag_or_digest() const;    // what goes after /manifests/ (digest wins)
  std::string endpoint_host() const;    // "registry-1.docker.io" for docker.io, else domain
  bool is_plain_http_default() const;   // localhost, 127.0.0.0/8, ::1
};

// How docker shows a reference the user typed (ps's IMAGE, a container's Config.Image): the
// familiar name, the tag only if one was written ("docker.io/library/ubuntu" -> "ubuntu"). Text
// that is no reference (a full image ID) is returned as it is.
std::string familiar_reference(std::string_view text);

}  // namespace slipway::store
