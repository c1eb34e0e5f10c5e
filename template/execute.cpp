// Executing a parsed template (Go's text/template/exec.go semantics on JSON values).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "template/functions.h"
#include "template/nodes.h"

namespace slipway::gotemplate {
namespace {

enum class Flow { normal, break_, continue_ };

class Executor {
 public:
  Executor(const std::string& text, const Value& root, const ExecuteOptions& options)
      : text_(text), root_(root), options_(options) {
    variables_.push_back({"$", root});
  }

  std::string run(const std::vector<std::unique_ptr<Node>>& nodes) {
    walk(nodes, root_);
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(size_t pos, const std::string& node_text, const std::string& message) {
    std::string before = text_.substr(0, std::min(pos, text_.size()));
    size_t line = 1 + std::count(before.begin(), before.end(), '\n');
    size_t newline = before.rfind('\n');
    size_t column = newline == std::string::npos ? pos : pos - newline - 1;
    std::string context = node_text.size() > 20 ? node_text.substr(0, 20) + "..." : node_text;
    throw TemplateError("template: :" + std::to_string(line) + ":" + std::to_string(column) +
                        ": executing \"\" at <" + context + ">: " + message);
  }

  Flow walk(const std::vector<std::unique_ptr<Node>>& nodes, const Value& dot) {
    for (const auto& node : nodes) {
      Flow flow = walk(*node, dot);
      if (flow != Flow::normal) return flow;
    }
    return Flow::normal;
  }

  Flow walk(const Node& node, const Value& dot) {
    switch (node.kind) {
      case Node::Kind::text:
        out_ += node.text;
        return Flow::normal;
      case Node::Kind::action: {
        Value value = pipeline(*node.pipeline, dot);
        if (node.pipeline->variables.empty()) out_ += print(value);
        return Flow::normal;
      }
      case Node::Kind::break_:
        return Flow::break_;
      case Node::Kind::continue_:
        return Flow::continue_;
      case Node::Kind::if_:
      case Node::Kind::with: {
        size_t mark = variables_.size();
        Value value = pipeline(*node.pipeline, dot);
        Flow flow;
        if (truth(value))
          flow = walk(node.list, node.kind == Node::Kind::with ? value : dot);
        else
          flow = walk(node.else_list, dot);
        variables_.resize(mark);
        return flow;
      }
      case Node::Kind::range:
        return range(node, dot);
    }
    return Flow::normal;
  }

  Flow range(const Node& node, const Value& dot) {
    size_t mark = variables_.size();
    Value value = pipeline(*node.pipeline, dot);
    const auto& names = node.pipeline->variables;
    auto one = [&](const Value& key, const Value& element) {
      if (names.size() == 1) set_variable(names[0], element, node.pipeline->assign, mark);
      if (names.size() == 2) {
        set_variable(names[0], key, node.pipeline->assign, mark);
        set_variable(names[1], element, node.pipeline->assign, mark);
      }
      size_t inner = variables_.size();
      Flow flow = walk(node.list, element);
      variables_.resize(inner);
      return flow;
    };
    bool any = false;
    if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        any = true;
        if (one(Value(static_cast<int64_t>(i)), value[i]) == Flow::break_) break;
      }
    } else if (value.is_object()) {
      std::vector<std::string> keys;
      for (const auto& item : value.items()) keys.push_back(item.key());
      std::sort(keys.begin(), keys.end());
      for (const auto& key : keys) {
        any = true;
        if (one(Value(key), value[key]) == Flow::break_) break;
      }
    } else if (value.is_number_integer()) {
      int64_t count = value.get<int64_t>();
      if (names.size() > 1)
        fail(node.pos, "range",
             "can't use " + print(value) + " to iterate over more than one variable");
      if (options_.max_range_count > 0 && count > options_.max_range_count)
        fail(node.pos, "range",
             "range over " + print(value) + " exceeds the limit of " +
                 std::to_string(options_.max_range_count) + " iterations");
      for (int64_t i = 0; i < count; ++i) {
        any = true;
        if (one(Value(i), Value(i)) == Flow::break_) break;
      }
    } else if (!value.is_null() && !value.is_discarded()) {
      fail(node.pipeline->pos, node.pipeline->text, "range can't iterate over " + print(value));
    }
    Flow flow = Flow::normal;
    if (!any) flow = walk(node.else_list, dot);
    variables_.resize(mark);
    return flow == Flow::break_ || flow == Flow::continue_ ? Flow::normal : flow;
  }

  void set_variable(const std::string& name, const Value& value, bool assign, size_t floor) {
    if (assign) {
      for (size_t i = variables_.size(); i-- > 0;)
        if (variables_[i].first == name) {
          variables_[i].second = value;
          return;
        }
    }
    (void)floor;
    variables_.push_back({name, value});
  }

  Value pipeline(const Pipeline& pipe, const Value& dot) {
    Value value = no_value();
    bool have_final = false;
    for (const auto& cmd : pipe.commands) {
      value = command(cmd, dot, have_final ? &value : nullptr);
      have_final = true;
    }
    for (const auto& name : pipe.variables) set_variable(name, value, pipe.assign, 0);
    return value;
  }

  Value command(const Command& cmd, const Value& dot, const Value* final) {
    const Operand& first = cmd.operands.front();
    std::vector<const Operand*> args;
    for (size_t i = 1; i < cmd.operands.size(); ++i) args.push_back(&cmd.operands[i]);
    switch (first.kind) {
      case Operand::Kind::identifier:
        return function(first, cmd, dot, args, final);
      case Operand::Kind::field:
        return chain(dot, &dot == &root_, first, dot, args, final);
      case Operand::Kind::variable:
        return chain(variable(first), first.name == "$", first, dot, args, final);
      case Operand::Kind::pipeline:
        return chain(pipeline(*first.pipeline, dot), false, first, dot, args, final);
      case Operand::Kind::dot:
      case Operand::Kind::literal:
        if (!args.empty() || final)
          fail(first.pos, first.text, "can't give argument to non-function " + first.text);
        return first.kind == Operand::Kind::dot ? dot : first.literal;
    }
    return no_value();
  }

  const Value& variable(const Operand& op) {
    for (size_t i = variables_.size(); i-- > 0;)
      if (variables_[i].first == op.name) return variables_[i].second;
    fail(op.pos, op.text, "undefined variable: " + op.name);
  }

  // An operand in argument position.
  Value argument(const Operand& op, const Value& dot) {
    switch (op.kind) {
      case Operand::Kind::dot:
        return dot;
      case Operand::Kind::literal:
        return op.literal;
      case Operand::Kind::field:
        return chain(dot, &dot == &root_, op, dot, {}, nullptr);
      case Operand::Kind::variable:
        return chain(variable(op), op.name == "$", op, dot, {}, nullptr);
      case Operand::Kind::pipeline:
        return chain(pipeline(*op.pipeline, dot), false, op, dot, {}, nullptr);
      case Operand::Kind::identifier: {
        Command cmd;
        cmd.pos = op.pos;
        cmd.text = op.text;
        return function(op, cmd, dot, {}, nullptr);
      }
    }
    return no_value();
  }

  // receiver.F1.F2...; the last field gets the command's arguments (a method call).
  // `is_root`: the receiver is the data the template was executed with (a struct in Go).
  Value chain(Value receiver, bool is_root, const Operand& op, const Value& dot,
              const std::vector<const Operand*>& args, const Value* final) {
    const std::vector<std::string>& fields = op.fields;
    if (fields.empty()) {
      if (!args.empty() || final)
        fail(op.pos, op.text, "can't give argument to non-function " + op.text);
      return receiver;
    }
    for (size_t i = 0; i < fields.size(); ++i) {
      bool last = i + 1 == fields.size();
      const std::string& name = fields[i];
      bool has_args = last && (!args.empty() || final);
      if (is_root && i == 0 && options_.methods.count(name) && !receiver.contains(name) &&
          receiver.is_object()) {
        std::vector<Value> values;
        if (last) {
          for (const Operand* arg : args) values.push_back(argument(*arg, dot));
          if (final) values.push_back(*final);
        }
        try {
          receiver = options_.methods.at(name)(receiver, values);
        } catch (const TemplateError&) {
          throw;
        } catch (const std::exception& e) {
          fail(op.pos, op.text, "error calling " + name + ": " + e.what());
        }
        continue;
      }
      if (receiver.is_object()) {
        auto found = receiver.find(name);
        if (found == receiver.end()) {
          if (is_root && i == 0 && !options_.type_name.empty() && !options_.header)
            fail(op.pos, op.text,
                 "can't evaluate field " + name + " in type " + options_.type_name);
          if (has_args) fail(op.pos, op.text, name + " is not a method but has arguments");
          receiver = options_.header ? Value("") : no_value();
          is_root = false;
          continue;
        }
        // docker ignores what a header cell cannot do: `.Label "x"` is the header's "LABEL".
        if (has_args && !options_.header)
          fail(op.pos, op.text, name + " has arguments but cannot be invoked as function");
        Value next = *found;
        receiver = std::move(next);
        is_root = false;
        continue;
      }
      if (receiver.is_discarded())
        fail(op.pos, op.text, "nil data; no entry for key \"" + name + "\"");
      if (receiver.is_null()) fail(op.pos, op.text, "nil pointer evaluating interface {}." + name);
      fail(op.pos, op.text, "can't evaluate field " + name + " in type " + go_type(receiver));
    }
    return receiver;
  }

  Value function(const Operand& ident, const Command& cmd, const Value& dot,
                 const std::vector<const Operand*>& args, const Value* final) {
    const std::string& name = ident.name;
    // and/or evaluate their arguments only as far as needed, as Go's do.
    if (name == "and" || name == "or") {
      size_t count = args.size() + (final ? 1 : 0);
      if (count < 1)
        fail(ident.pos, ident.text, "wrong number of args for " + name + ": want at least 1 got 0");
      Value value;
      for (size_t i = 0; i < count; ++i) {
        value = i < args.size() ? argument(*args[i], dot) : *final;
        if (truth(value) == (name == "or")) return value;
      }
      return value;
    }
    std::vector<Value> values;
    for (const Operand* arg : args) values.push_back(argument(*arg, dot));
    if (final) values.push_back(*final);
    try {
      return call_function(name, values, options_.header);
    } catch (const ArityError& e) {
      fail(ident.pos, ident.text, e.what());
    } catch (const ArgumentError& e) {
      size_t index = e.index();
      if (index < args.size()) fail(args[index]->pos, args[index]->text, e.what());
      fail(cmd.pos, cmd.text, e.what());
    } catch (const CallError& e) {
      fail(cmd.pos, cmd.text, "error calling " + name + ": " + e.what());
    }
  }

  std::string print(const Value& value) {
    if (options_.header && value.is_discarded()) return "";
    return print_value(value);
  }

  const std::string& text_;
  const Value& root_;
  const ExecuteOptions& options_;
  std::vector<std::pair<std::string, Value>> variables_;
  std::string out_;
};

}  // namespace

std::string Template::execute(const Value& data, const ExecuteOptions& options) const {
  return Executor(text_, data, options).run(nodes_);
}

}  // namespace slipway::gotemplate
