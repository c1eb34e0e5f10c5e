// Go's template builtins (text/template/funcs.go) and docker's additions
// (docker/cli templates.basicFunctions), on JSON values, with Go's error messages.
#include "template/functions.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>

#include "common/go_quote.h"

namespace slipway::gotemplate {
namespace {

std::string format_float(double value) {
  // strconv.FormatFloat(v, 'g', -1, 64), which fmt's %v uses: the shortest digits that read
  // back as `value`, in exponent form when the exponent is below -4 or at least 6 ("1e+06").
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  // buffer: d.ddde±XX
  std::string text = buffer;
  size_t e = text.find('e');
  int exponent = std::stoi(text.substr(e + 1));
  std::string mantissa = text.substr(0, e);
  if (exponent < -4 || exponent >= 6) {
    // Go: mantissa as is, exponent with at least two digits ("1e+06").
    char exp_text[16];
    std::snprintf(exp_text, sizeof exp_text, "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    return mantissa + exp_text;
  }
  std::snprintf(buffer, sizeof buffer, "%.*f", std::max(0, precision - 1 - exponent), value);
  return buffer;
}

int64_t as_int(const Value& value, size_t index) {
  if (value.is_number_integer()) return value.get<int64_t>();
  throw ArgumentError(index, "wrong type for value; expected int; got " + go_type(value));
}

const std::string& as_string(const Value& value, size_t index) {
  if (!value.is_string())
    throw ArgumentError(index, "wrong type for value; expected string; got " + go_type(value));
  return value.get_ref<const std::string&>();
}

void want_args(const std::string& name, const std::vector<Value>& args, size_t count) {
  if (args.size() != count)
    throw ArityError("wrong number of args for " + name + ": want " + std::to_string(count) +
                     " got " + std::to_string(args.size()));
}

void want_at_least(const std::string& name, const std::vector<Value>& args, size_t count) {
  if (args.size() < count)
    throw ArityError("wrong number of args for " + name + ": want at least " +
                     std::to_string(count) + " got " + std::to_string(args.size()));
}

// fmt.Sprint: spaces between operands when neither side is a string.
std::string sprint(const std::vector<Value>& args) {
  std::string out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (i > 0 && !args[i].is_string() && !args[i - 1].is_string()) out += ' ';
    out += print_value(args[i]);
  }
  return out;
}

std::string sprintln(const std::vector<Value>& args) {
  std::string out;
  for (size_t i = 0; i < args.size(); ++i) out += (i > 0 ? " " : "") + print_value(args[i]);
  return out + "\n";
}

std::string bad_verb(char verb, const Value& value) {
  return std::string("%!") + verb + "(" + go_type(value) + "=" + print_value(value) + ")";
}

// fmt.Sprintf for the verbs templates use: v s q d x X o b c e E f F g G t and %%.
std::string sprintf(const std::string& format, const std::vector<Value>& args) {
  std::string out;
  size_t next_arg = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    std::string flags;
    ++i;
    while (i < format.size() && std::string("-+# 0").find(format[i]) != std::string::npos)
      flags += format[i++];
    // Go's parsenum: a number past a million is "crazy long" and takes the rest of the format
    // with it (then the verb is missing). Stopping there also keeps the int from overflowing.
    auto parse_number = [&](int& number) {
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) {
        if (number > 1000000) {
          i = format.size();
          return;
        }
        number = number * 10 + (format[i++] - '0');
      }
    };
    int width = -1, precision = -1;
    if (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) {
      width = 0;
      parse_number(width);
    }
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = 0;
      parse_number(precision);
    }
    if (i >= format.size()) {
      out += "%!(NOVERB)";
      break;
    }
    char verb = format[i];
    if (verb == '%') {
      out += '%';
      continue;
    }
    if (next_arg >= args.size()) {
      out += std::string("%!") + verb + "(MISSING)";
      continue;
    }
    const Value& arg = args[next_arg++];
    std::string text;
    bool numeric = false;
    char buffer[512];
    auto c_format = [&](const std::string& conversion, auto value) {
      std::string spec = "%" + flags;
      if (precision >= 0) spec += "." + std::to_string(precision);
      spec += conversion;
      std::snprintf(buffer, sizeof buffer, spec.c_str(), value);
      return std::string(buffer);
    };
    switch (verb) {
      case 'v':
        text = print_value(arg);
        break;
      case 's':
        text = arg.is_string() ? arg.get<std::string>() : print_value(arg);
        if (precision >= 0 && static_cast<int>(text.size()) > precision) text.resize(precision);
        break;
      case 'q':
        if (arg.is_string())
          text = go_quote(arg.get<std::string>());
        else if (arg.is_number_integer())
          text = "'" + std::string(1, static_cast<char>(arg.get<int64_t>())) + "'";
        else
          text = bad_verb(verb, arg);
        break;
      case 't':
        text = arg.is_boolean() ? print_value(arg) : bad_verb(verb, arg);
        break;
      case 'd':
      case 'x':
      case 'X':
      case 'o':
      case 'b':
      case 'c':
        if (arg.is_number_integer()) {
          numeric = true;
          long long n = arg.get<long long>();
          if (verb == 'd') {
            text = c_format("lld", n);
          } else if (verb == 'c') {
            text = std::string(1, static_cast<char>(n));
          } else if (verb == 'b') {
            unsigned long long u = n < 0 ? -static_cast<unsigned long long>(n) : n;
            do {
              text.insert(text.begin(), static_cast<char>('0' + (u & 1)));
              u >>= 1;
            } while (u);
            if (n < 0) text.insert(text.begin(), '-');
          } else {
            text = c_format(verb == 'o' ? "llo" : verb == 'x' ? "llx" : "llX", n);
          }
        } else if (arg.is_string() && (verb == 'x' || verb == 'X')) {
          for (unsigned char c : arg.get<std::string>()) {
            std::snprintf(buffer, sizeof buffer, verb == 'x' ? "%02x" : "%02X", c);
            text += buffer;
          }
        } else {
          text = bad_verb(verb, arg);
        }
        break;
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G':
        if (arg.is_number_float()) {
          numeric = true;
          if ((verb == 'g' || verb == 'G') && precision < 0)
            text = format_float(arg.get<double>());
          else
            text = c_format(std::string(1, verb), arg.get<double>());
        } else {
          text = bad_verb(verb, arg);
        }
        break;
      default:
        text = std::string("%!") + verb + "(" + go_type(arg) + "=" + print_value(arg) + ")";
    }
    if (width > static_cast<int>(text.size())) {
      size_t fill = width - text.size();
      if (flags.find('-') != std::string::npos)
        text += std::string(fill, ' ');
      else if (numeric && flags.find('0') != std::string::npos)
        text.insert(text[0] == '-' || text[0] == '+' ? 1 : 0, fill, '0');
      else
        text.insert(0, fill, ' ');
    }
    out += text;
  }
  if (next_arg < args.size()) {
    out += "%!(EXTRA ";
    for (size_t k = next_arg; k < args.size(); ++k)
      out += (k > next_arg ? ", " : "") + go_type(args[k]) + "=" + print_value(args[k]);
    out += ")";
  }
  return out;
}

enum class Kind { invalid, boolean, integer, floating, string };

Kind basic_kind(const Value& value) {
  if (value.is_boolean()) return Kind::boolean;
  if (value.is_number_integer()) return Kind::integer;
  if (value.is_number_float()) return Kind::floating;
  if (value.is_string()) return Kind::string;
  return Kind::invalid;
}

bool equal(const Value& a, const Value& b) {
  Kind ka = basic_kind(a), kb = basic_kind(b);
  if ((a.is_null() || a.is_discarded()) || (b.is_null() || b.is_discarded()))
    return (a.is_null() || a.is_discarded()) && (b.is_null() || b.is_discarded());
  if (ka == Kind::invalid || kb == Kind::invalid) throw CallError("non-comparable type");
  if (ka != kb) throw CallError("incompatible types for comparison");
  return a == b;
}

bool less(const Value& a, const Value& b) {
  Kind ka = basic_kind(a), kb = basic_kind(b);
  if (ka == Kind::invalid || ka == Kind::boolean || kb == Kind::invalid || kb == Kind::boolean)
    throw CallError("invalid type for comparison");
  if (ka != kb) throw CallError("incompatible types for comparison");
  return a < b;
}

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\0':
        out += "\uFFFD";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string js_escape(const std::string& text) {
  std::string out;
  char buffer[8];
  for (unsigned char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '"':
        out += "\\\"";
        break;
      case '<':
        out += "\\u003C";
        break;
      case '>':
        out += "\\u003E";
        break;
      case '&':
        out += "\\u0026";
        break;
      case '=':
        out += "\\u003D";
        break;
      default:
        if (c < 0x20) {
          std::snprintf(buffer, sizeof buffer, "\\u%04X", c);
          out += buffer;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string query_escape(const std::string& text) {
  std::string out;
  char buffer[4];
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

Value index_value(const std::vector<Value>& args) {
  Value item = args[0];
  if (item.is_null() || item.is_discarded()) throw CallError("index of untyped nil");
  for (size_t i = 1; i < args.size(); ++i) {
    const Value& key = args[i];
    if (item.is_array() || item.is_string()) {
      if (!key.is_number_integer())
        throw CallError("cannot index slice/array with type " + go_type(key));
      int64_t at = key.get<int64_t>();
      int64_t size = item.is_array() ? static_cast<int64_t>(item.size())
                                     : static_cast<int64_t>(item.get<std::string>().size());
      if (at < 0 || at >= size) throw CallError("index out of range: " + std::to_string(at));
      if (item.is_array()) {
        Value element = item[static_cast<size_t>(at)];
        item = std::move(element);
      } else {
        item = static_cast<int64_t>(static_cast<unsigned char>(item.get<std::string>()[at]));
      }
    } else if (item.is_object()) {
      if (!key.is_string())
        throw CallError("value has type " + go_type(key) + "; should be string");
      auto found = item.find(key.get<std::string>());
      if (found == item.end()) return no_value();
      Value element = *found;
      item = std::move(element);
    } else {
      throw CallError("can't index item of type " + go_type(item));
    }
  }
  return item;
}

Value slice_value(const std::vector<Value>& args) {
  const Value& item = args[0];
  if (!item.is_array() && !item.is_string())
    throw CallError("can't slice item of type " + go_type(item));
  if (args.size() > 3)
    throw CallError("too many slice indexes: " + std::to_string(args.size() - 1));
  int64_t size = item.is_array() ? static_cast<int64_t>(item.size())
                                 : static_cast<int64_t>(item.get<std::string>().size());
  int64_t from = args.size() > 1 ? as_int(args[1], 1) : 0;
  int64_t to = args.size() > 2 ? as_int(args[2], 2) : size;
  if (from < 0 || from > size || to < from || to > size)
    throw CallError("index out of range: " + std::to_string(to < from ? to : from));
  if (item.is_string()) return item.get<std::string>().substr(from, to - from);
  Value out = Value::array();
  for (int64_t i = from; i < to; ++i) out.push_back(item[static_cast<size_t>(i)]);
  return out;
}

std::string title_case(const std::string& text) {
  std::string out = text;
  bool separator = true;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (separator && u < 0x80) c = static_cast<char>(std::toupper(u));
    separator = u < 0x80 && !std::isalnum(u) && c != '_' && c != '\'';
  }
  return out;
}

std::string lower_case(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string upper_case(std::string text) {
  for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

}  // namespace

std::string go_type(const Value& value) {
  switch (value.type()) {
    case Value::value_t::string:
      return "string";
    case Value::value_t::number_integer:
      return "int";
    case Value::value_t::number_unsigned:
      return "uint64";
    case Value::value_t::number_float:
      return "float64";
    case Value::value_t::boolean:
      return "bool";
    case Value::value_t::array:
      return "[]interface {}";
    case Value::value_t::object:
      return "map[string]interface {}";
    default:
      return "<nil>";
  }
}

bool truth(const Value& value) {
  switch (value.type()) {
    case Value::value_t::boolean:
      return value.get<bool>();
    case Value::value_t::number_integer:
    case Value::value_t::number_unsigned:
    case Value::value_t::number_float:
      return value.get<double>() != 0;
    case Value::value_t::string:
    case Value::value_t::array:
    case Value::value_t::object:
      return !value.empty() && !(value.is_string() && value.get_ref<const std::string&>().empty());
    default:
      return false;
  }
}

std::string print_value(const Value& value) {
  switch (value.type()) {
    case Value::value_t::discarded:
      return "<no value>";
    case Value::value_t::null:
      return "<nil>";
    case Value::value_t::string:
      return value.get<std::string>();
    case Value::value_t::boolean:
      return value.get<bool>() ? "true" : "false";
    case Value::value_t::number_integer:
      return std::to_string(value.get<int64_t>());
    case Value::value_t::number_unsigned:
      return std::to_string(value.get<uint64_t>());
    case Value::value_t::number_float:
      return format_float(value.get<double>());
    case Value::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < value.size(); ++i) out += (i ? " " : "") + print_value(value[i]);
      return out + "]";
    }
    case Value::value_t::object: {
      std::vector<std::string> keys;
      for (const auto& item : value.items()) keys.push_back(item.key());
      std::sort(keys.begin(), keys.end());
      std::string out = "map[";
      for (size_t i = 0; i < keys.size(); ++i)
        out += (i ? " " : "") + keys[i] + ":" + print_value(value[keys[i]]);
      return out + "]";
    }
    default:
      return "<nil>";
  }
}

Value call_function(const std::string& name, const std::vector<Value>& given, bool header) {
  // A missing value passed to a function is Go's nil interface.
  std::vector<Value> args = given;
  for (auto& arg : args)
    if (arg.is_discarded()) arg = nullptr;

  static const std::map<std::string, size_t> kDockerArity = {
      {"json", 1},  {"split", 2}, {"join", 2},     {"title", 1},
      {"lower", 1}, {"upper", 1}, {"truncate", 2}, {"pad", 3}};
  if (auto docker = kDockerArity.find(name); docker != kDockerArity.end()) {
    want_args(name, args, docker->second);
    if (header) return args[0];
  }
  if (name == "json") return args[0].dump(-1, ' ', false, Value::error_handler_t::replace);
  if (name == "split") {
    const std::string& text = as_string(args[0], 0);
    const std::string& separator = as_string(args[1], 1);
    Value parts = Value::array();
    if (separator.empty()) {
      for (size_t i = 0; i < text.size();) {
        size_t length = 1;
        while (i + length < text.size() &&
               (static_cast<unsigned char>(text[i + length]) & 0xC0) == 0x80)
          ++length;
        parts.push_back(text.substr(i, length));
        i += length;
      }
      return parts;
    }
    size_t start = 0;
    for (size_t at; (at = text.find(separator, start)) != std::string::npos;
         start = at + separator.size())
      parts.push_back(text.substr(start, at - start));
    parts.push_back(text.substr(start));
    return parts;
  }
  if (name == "join") {
    if (!args[0].is_array() ||
        !std::all_of(args[0].begin(), args[0].end(), [](const Value& v) { return v.is_string(); }))
      throw ArgumentError(0, "wrong type for value; expected []string; got " + go_type(args[0]));
    const std::string& separator = as_string(args[1], 1);
    std::string out;
    for (size_t i = 0; i < args[0].size(); ++i)
      out += (i ? separator : "") + args[0][i].get<std::string>();
    return out;
  }
  if (name == "title") return title_case(as_string(args[0], 0));
  if (name == "lower") return lower_case(as_string(args[0], 0));
  if (name == "upper") return upper_case(as_string(args[0], 0));
  if (name == "truncate") {
    const std::string& text = as_string(args[0], 0);
    int64_t length = as_int(args[1], 1);
    if (static_cast<int64_t>(text.size()) < length) return text;
    if (length < 0) throw CallError("slice bounds out of range [:" + std::to_string(length) + "]");
    return text.substr(0, static_cast<size_t>(length));
  }
  if (name == "pad") {
    const std::string& text = as_string(args[0], 0);
    int64_t prefix = as_int(args[1], 1), suffix = as_int(args[2], 2);
    if (text.empty()) return text;
    if (prefix < 0 || suffix < 0 || prefix > (1 << 20) || suffix > (1 << 20))
      throw CallError("strings: negative Repeat count");
    return std::string(static_cast<size_t>(prefix), ' ') + text +
           std::string(static_cast<size_t>(suffix), ' ');
  }

  // Go's builtins.
  if (name == "not") {
    want_args(name, args, 1);
    return !truth(args[0]);
  }
  if (name == "len") {
    want_args(name, args, 1);
    const Value& item = args[0];
    if (item.is_string()) return static_cast<int64_t>(item.get_ref<const std::string&>().size());
    if (item.is_array() || item.is_object()) return static_cast<int64_t>(item.size());
    if (item.is_null()) throw CallError("len of nil pointer");
    throw CallError("len of type " + go_type(item));
  }
  if (name == "index") {
    want_at_least(name, args, 1);
    return index_value(args);
  }
  if (name == "slice") {
    want_at_least(name, args, 1);
    return slice_value(args);
  }
  if (name == "print") return sprint(args);
  if (name == "println") return sprintln(args);
  if (name == "printf") {
    want_at_least(name, args, 1);
    const std::string& format = as_string(args[0], 0);
    return sprintf(format, std::vector<Value>(args.begin() + 1, args.end()));
  }
  if (name == "html") return html_escape(sprint(args));
  if (name == "js") return js_escape(sprint(args));
  if (name == "urlquery") return query_escape(sprint(args));
  if (name == "eq") {
    want_at_least(name, args, 1);
    if (args.size() < 2) throw CallError("missing argument for comparison");
    for (size_t i = 1; i < args.size(); ++i)
      if (equal(args[0], args[i])) return true;
    return false;
  }
  if (name == "ne" || name == "lt" || name == "le" || name == "gt" || name == "ge") {
    want_args(name, args, 2);
    if (name == "ne") return !equal(args[0], args[1]);
    if (name == "lt") return less(args[0], args[1]);
    if (name == "ge") return !less(args[0], args[1]);
    if (name == "gt") return less(args[1], args[0]);
    return !less(args[1], args[0]);
  }
  if (name == "call") {
    want_at_least(name, args, 1);
    throw CallError("non-function of type " + go_type(args[0]));
  }
  throw CallError("function \"" + name + "\" not defined");
}

}  // namespace slipway::gotemplate
