// Go's text/template, as docker's --format uses it: one small engine with docker's functions.
//
// What the folder owns: parsing a template text (Template::parse), executing it against a JSON
// value (Template::execute), and docker's formatter conventions around it (format.h: the `table`
// prefix, `json`, header rows, tab-aligned output).
//
// The data model is JSON (nlohmann::ordered_json, field order kept): docker's typed structs are
// JSON objects here. `{{.A.B}}` looks a key up in an object; printing follows Go's fmt %v
// (strings as they are, arrays as `[a b]`, objects as `map[k:v]` with sorted keys, null as
// `<nil>`, a missing key as `<no value>`). On the root object a missing field is an error naming
// the type (ExecuteOptions::type_name), as Go's is for a struct; objects below it behave as Go
// maps. Methods with arguments (ps's `{{.Label "key"}}`) are functions the caller registers.
//
// Supported: text and actions, `{{-`/`-}}` trimming, comments, pipelines, parenthesised
// pipelines, variables (`$`, `$x := ...`, `$x = ...`), `if`/`else if`/`else`, `range` (arrays,
// objects by sorted key, integers; `$i, $e :=`; `else`; `break`, `continue`), `with`/`else with`,
// Go's builtins (and or not len index slice print printf println eq ne lt le gt ge html js
// urlquery) and docker's (json join split lower upper title truncate pad). Not supported:
// define/template/block.
//
// Errors are Go's words: parse errors "template: :LINE: MESSAGE", execution errors
// "template: :LINE:COL: executing \"\" at <NODE>: MESSAGE"; both are TemplateError (a
// slipway::Error), so a fuzzer can feed any string to parse().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace slipway::gotemplate {

using Value = nlohmann::ordered_json;

class TemplateError : public Error {
 public:
  using Error::Error;
};

// A method of the root value, called as `{{.Name arg...}}` (docker's `.Label "key"`).
using Method = std::function<Value(const Value& receiver, const std::vector<Value>& args)>;

struct ExecuteOptions {
  // The Go type name in "can't evaluate field X in type T" for a field the root object lacks,
  // e.g. "*formatter.ContainerContext". Empty: the root is a map too (missing: <no value>).
  std::string type_name;
  std::map<std::string, Method> methods;
  // docker's header pass of a table: json, join, split, lower, upper, title, truncate and pad
  // return their first argument unchanged, so the header cell is the header name.
  bool header = false;
  // The most iterations a `range` over an integer may make; 0 for no limit, as in Go. --format is
  // the user's own text, so the CLI sets none (a range over 10^15 runs as long as Go's would);
  // the fuzzer sets one, so that such a template is an error rather than a timeout.
  int64_t max_range_count = 0;
};

struct Node;

class Template {
 public:
  // Throws TemplateError with Go's message for a template Go would not parse.
  static Template parse(std::string_view text);

  // Throws TemplateError with Go's message for an execution error.
  std::string execute(const Value& data, const ExecuteOptions& options = {}) const;

  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

 private:
  Template();
  std::string text_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

// Go's fmt.Sprint of one value (%v).
std::string print_value(const Value& value);

}  // namespace slipway::gotemplate
