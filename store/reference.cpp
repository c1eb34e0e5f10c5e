// Docker image references (github.com/distribution/reference grammar and its normalization);
// see store/reference.h.
#include "store/reference.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace slipway::store {
namespace {

constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kDockerHubEndpoint = "registry-1.docker.io";
constexpr size_t kMaxNameLength = 255;

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
bool is_hex_lower(char c) {
  return (c >= 'a' && c <= 'f') || (c >= '0' && c <= '9');
}

// [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
bool valid_path_component(std::string_view s) {
  size_t i = 0;
  auto alnum_run = [&] {
    size_t start = i;
    while (i < s.size() && is_lower_alnum(s[i])) ++i;
    return i > start;
  };
  if (!alnum_run()) return false;
  while (i < s.size()) {
    if (s[i] == '.') {
      ++i;
    } else if (s[i] == '_') {
      ++i;
      if (i < s.size() && s[i] == '_') ++i;
    } else if (s[i] == '-') {
      while (i < s.size() && s[i] == '-') ++i;
    } else {
      return false;
    }
    if (!alnum_run()) return false;
  }
  return true;
}

// (?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])
bool valid_domain_component(std::string_view s) {
  if (s.empty() || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alnum(c) || c == '-'; });
}

// host[:port], host being dot-separated components or a bracketed IPv6 address.
bool valid_domain(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    std::string_view inside = host.substr(1, close - 1);
    if (!std::all_of(inside.begin(), inside.end(), [](char c) {
          return std::isxdigit(static_cast<unsigned char>(c)) || c == ':';
        }))
      return false;
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      port = rest.substr(1);
      if (port.empty()) return false;
    }
  } else {
    size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return false;
    }
    size_t start = 0;
    while (true) {
      size_t dot = host.find('.', start);
      if (!valid_domain_component(host.substr(start, dot - start))) return false;
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  return std::all_of(port.begin(), port.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
}

// [\w][\w.-]{0,127}
bool valid_tag(std::string_view tag) {
  if (tag.empty() || tag.size() > 128) return false;
  auto word = [](char c) { return is_alnum(c) || c == '_'; };
  if (!word(tag.front())) return false;
  return std::all_of(tag.begin(), tag.end(),
                     [&](char c) { return word(c) || c == '.' || c == '-'; });
}

// algorithm:encoded; sha256 needs exactly 64 lowercase hex digits.
std::string digest_problem(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) return "invalid digest format";
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view encoded = digest.substr(colon + 1);
  if (algorithm != "sha256") return "unsupported digest algorithm " + std::string(algorithm);
  if (encoded.size() != 64 || !std::all_of(encoded.begin(), encoded.end(), is_hex_lower))
    return "invalid checksum digest length or format";
  return "";
}

}  // namespace

Reference Reference::parse(std::string_view text) {
  auto fail = [&](const std::string& reason) -> Error {
    return Error("invalid reference format: \"" + std::string(text) + "\": " + reason);
  };
  if (text.empty()) throw fail("repository name must have at least one component");

  Reference ref;
  std::string_view name = text;
  if (size_t at = name.find('@'); at != std::string_view::npos) {
    ref.digest = std::string(name.substr(at + 1));
    name = name.substr(0, at);
    if (std::string problem = digest_problem(ref.digest); !problem.empty()) throw fail(problem);
  }
  size_t last_slash = name.rfind('/');
  size_t tag_colon = name.rfind(':');
  if (tag_colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || tag_colon > last_slash)) {
    ref.tag = std::string(name.substr(tag_colon + 1));
    name = name.substr(0, tag_colon);
    if (!valid_tag(ref.tag))
      throw fail("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, got \"" + ref.tag + "\"");
  }
  if (name.empty()) throw fail("repository name must have at least one component");

  // The first component is a registry when it looks like a host: it has a dot or a port, is
  // "localhost", or has upper case (which a repository path never has).
  size_t first_slash = name.find('/');
  std::string_view remainder = name;
  ref.domain = std::string(kDockerHub);
  if (first_slash != std::string_view::npos) {
    std::string_view first = name.substr(0, first_slash);
    bool has_upper = std::any_of(first.begin(), first.end(), [](char c) {
      return std::isupper(static_cast<unsigned char>(c));
    });
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" || has_upper) {
      if (!valid_domain(first)) throw fail("invalid registry host \"" + std::string(first) + "\"");
      ref.domain = std::string(first);
      remainder = name.substr(first_slash + 1);
    }
  }
  if (ref.domain == "index.docker.io") ref.domain = std::string(kDockerHub);
  if (remainder.empty()) throw fail("repository name must have at least one component");
  if (std::any_of(remainder.begin(), remainder.end(),
                  [](char c) { return std::isupper(static_cast<unsigned char>(c)); }))
    throw fail("repository name must be lowercase");
  if (remainder.size() == 64 && std::all_of(remainder.begin(), remainder.end(), is_hex_lower))
    throw fail("cannot specify 64-byte hexadecimal strings as a repository name");
  size_t start = 0;
  while (true) {
    size_t slash = remainder.find('/', start);
    std::string_view component = remainder.substr(start, slash - start);
    if (!valid_path_component(component))
      throw fail(component.empty()
                     ? "repository path has an empty component"
                     : "invalid repository path component \"" + std::string(component) +
                           "\" (must match [a-z0-9]+ joined by '.', '_', '__' or '-')");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  ref.path = std::string(remainder);
  if (ref.domain == kDockerHub && ref.path.find('/') == std::string::npos)
    ref.path = "library/" + ref.path;
  if (ref.name().size() > kMaxNameLength)
    throw fail("repository name must not be more than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) {
    ref.tag = "latest";
    ref.tag_defaulted = true;
  }
  return ref;
}

std::string Reference::name() const {
  return domain + "/" + path;
}

std::string Reference::familiar_name() const {
  if (domain != kDockerHub) return name();
  constexpr std::string_view kLibrary = "library/";
  if (path.compare(0, kLibrary.size(), kLibrary) == 0 &&
      path.find('/', kLibrary.size()) == std::string::npos)
    return path.substr(kLibrary.size());
  return path;
}

static std::string with_suffixes(std::string base, const Reference& ref) {
  if (!ref.tag.empty()) base += ":" + ref.tag;
  if (!ref.digest.empty()) base += "@" + ref.digest;
  return base;
}

std::string Reference::string() const {
  return with_suffixes(name(), *this);
}
std::string Reference::familiar_string() const {
  return with_suffixes(familiar_name(), *this);
}
std::string Reference::tag_or_digest() const {
  return digest.empty() ? tag : digest;
}

std::string Reference::endpoint_host() const {
  return domain == kDockerHub ? std::string(kDockerHubEndpoint) : domain;
}

bool Reference::is_plain_http_default() const {
  std::string_view host = domain;
  if (host.starts_with("[")) {
    return host.substr(0, host.find(']') + 1) == "[::1]";
  }
  host = host.substr(0, host.find(':'));
  if (host == "localhost") return true;
  // 127.0.0.0/8 written as a dotted quad.
  if (!host.starts_with("127.")) return false;
  int parts = 0;
  size_t start = 0;
  while (start <= host.size()) {
    size_t dot = host.find('.', start);
    std::string_view part = host.substr(start, dot - start);
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
        std::stoi(std::string(part)) > 255)
      return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return parts == 4;
}

std::string familiar_reference(std::string_view text) {
  try {
    Reference ref = Reference::parse(text);
    if (ref.tag_defaulted) ref.tag.clear();
    return ref.familiar_string();
  } catch (const Error&) {
    return std::string(text);
  }
}

}  // namespace slipway::store
