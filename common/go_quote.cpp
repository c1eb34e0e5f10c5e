#include "common/go_quote.h"

#include <cstdint>
#include <cstdio>

namespace slipway {
namespace {

// Decodes one UTF-8 rune at text[i]; returns its length, or 0 for an invalid sequence.
size_t decode_rune(std::string_view text, size_t i, uint32_t& rune) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char lead = byte(i);
  size_t length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (length == 0 || lead >= 0xF8 || i + length > text.size()) return 0;
  rune = lead & (0x7F >> length);
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    rune = (rune << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
  if (rune < kMinimum[length] || rune > 0x10FFFF || (rune >= 0xD800 && rune <= 0xDFFF)) return 0;
  return length;
}

// Approximates unicode.IsPrint for the runes Dockerfiles meet: C1 controls, the BOM, line and
// paragraph separators and unassigned private-use style code points are not printable.
bool is_printable_rune(uint32_t rune) {
  if (rune >= 0x80 && rune <= 0xA0) return false;
  if (rune == 0xAD || rune == 0xFEFF || rune == 0x2028 || rune == 0x2029) return false;
  if (rune >= 0xFFF9 && rune <= 0xFFFB) return false;
  if (rune >= 0xE000 && rune <= 0xF8FF) return false;
  return true;
}

}  // namespace

std::string go_quote(std::string_view text) {
  std::string out = "\"";
  char hex[16];
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            std::snprintf(hex, sizeof hex, "\\x%02x", c);
            out += hex;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    uint32_t rune = 0;
    size_t length = decode_rune(text, i, rune);
    if (length == 0) {
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
      ++i;
    } else if (is_printable_rune(rune)) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      std::snprintf(hex, sizeof hex, rune > 0xFFFF ? "\\U%08x" : "\\u%04x", rune);
      out += hex;
      i += length;
    }
  }
  out += '"';
  return out;
}

std::string go_quote_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ' ';
    out += go_quote(items[i]);
  }
  return out + "]";
}

}  // namespace slipway
