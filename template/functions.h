// The functions a template can call (Go's builtins and docker's), and Go's notions of truth,
// type names and printing that they and the executor share.
#pragma once

#include <string>
#include <vector>

#include "template/template.h"

namespace slipway::gotemplate {

// What Go's template calls an invalid value, such as a missing map key: printed as "<no value>".
inline Value no_value() {
  return Value(Value::value_t::discarded);
}

// "wrong number of args for join: want 2 got 1" (Go reports it at the function's name).
class ArityError : public TemplateError {
 public:
  using TemplateError::TemplateError;
};

// A bad argument (Go reports it at that argument): "wrong type for value; expected string; got
// int".
class ArgumentError : public TemplateError {
 public:
  ArgumentError(size_t index, const std::string& what) : TemplateError(what), index_(index) {}
  size_t index() const { return index_; }

 private:
  size_t index_;
};

// The function failed ("error calling index: index out of range: 5").
class CallError : public TemplateError {
 public:
  using TemplateError::TemplateError;
};

// Calls `name` (known to the parser) with evaluated arguments. In `header` mode docker's
// string functions return their first argument (docker's HeaderFunctions).
Value call_function(const std::string& name, const std::vector<Value>& args, bool header);

// Go's truth for if/with/and/or: false, 0, "", empty arrays and objects, nil and no value are
// false.
bool truth(const Value& value);

// The Go type a JSON value stands for, as Go's messages name it ("string", "int", ...).
std::string go_type(const Value& value);

}  // namespace slipway::gotemplate
