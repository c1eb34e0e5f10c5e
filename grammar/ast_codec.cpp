#include "grammar/ast_codec.h"

#include <RuntimeMetaData.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/error.h"
#include "parser_sources_digest.h"

namespace slipway::grammar {
namespace {

// Every field in the order the structs in ast.h declare them; integers as 4 little-endian bytes,
// strings as their length and bytes, optionals as a presence byte and the value.
class Writer {
 public:
  void integer(uint32_t value) {
    for (int shift = 0; shift < 32; shift += 8) bytes_.push_back(static_cast<char>(value >> shift));
  }
  void number(int value) { integer(static_cast<uint32_t>(value)); }
  void flag(bool value) { bytes_.push_back(value ? 1 : 0); }
  void text(std::string_view value) {
    integer(static_cast<uint32_t>(value.size()));
    bytes_.append(value);
  }
  void optional_text(const std::optional<std::string>& value) {
    flag(value.has_value());
    if (value) text(*value);
  }
  void texts(const std::vector<std::string>& values) {
    integer(static_cast<uint32_t>(values.size()));
    for (const auto& value : values) text(value);
  }
  void position(const ast::Position& value) {
    number(value.line);
    number(value.column);
  }
  void command(const ast::Command& value) {
    flag(value.exec_form);
    texts(value.exec_args);
    text(value.shell_text);
  }
  void heredocs(const std::vector<ast::Heredoc>& values) {
    integer(static_cast<uint32_t>(values.size()));
    for (const auto& heredoc : values) {
      text(heredoc.name);
      text(heredoc.content);
      integer(heredoc.file_descriptor);
      flag(heredoc.chomp);
      flag(heredoc.expand);
      position(heredoc.position);
    }
  }
  void key_values(const std::vector<ast::KeyValue>& values) {
    integer(static_cast<uint32_t>(values.size()));
    for (const auto& pair : values) {
      text(pair.key);
      text(pair.value);
    }
  }
  void file_transfer(const ast::FileTransfer& value) {
    texts(value.sources);
    text(value.destination);
    flag(value.json_form);
    heredocs(value.heredocs);
  }

  void instruction(const ast::Instruction& value) {
    text(value.keyword);
    text(value.source);
    integer(static_cast<uint32_t>(value.flags.size()));
    for (const auto& item : value.flags) {
      text(item.name);
      optional_text(item.value);
      position(item.position);
    }
    position(value.start);
    number(value.end_line);
    integer(static_cast<uint32_t>(value.body.index()));
    std::visit([this](const auto& body) { this->body(body); }, value.body);
  }

  void body(const ast::FromInstruction& value) {
    text(value.image);
    optional_text(value.stage_name);
    text(value.as_keyword);
  }
  void body(const ast::MaintainerInstruction& value) { text(value.name); }
  void body(const ast::RunInstruction& value) {
    command(value.command);
    heredocs(value.heredocs);
  }
  void body(const ast::CmdInstruction& value) { command(value.command); }
  void body(const ast::EntrypointInstruction& value) { command(value.command); }
  void body(const ast::ShellInstruction& value) { command(value.command); }
  void body(const ast::EnvInstruction& value) {
    key_values(value.variables);
    flag(value.legacy_form);
  }
  void body(const ast::LabelInstruction& value) {
    key_values(value.labels);
    flag(value.legacy_form);
  }
  void body(const ast::ExposeInstruction& value) { texts(value.ports); }
  void body(const ast::AddInstruction& value) { file_transfer(value); }
  void body(const ast::CopyInstruction& value) { file_transfer(value); }
  void body(const ast::VolumeInstruction& value) {
    texts(value.paths);
    flag(value.json_form);
  }
  void body(const ast::UserInstruction& value) { text(value.user); }
  void body(const ast::WorkdirInstruction& value) { text(value.path); }
  void body(const ast::StopsignalInstruction& value) { text(value.signal); }
  void body(const ast::ArgInstruction& value) {
    integer(static_cast<uint32_t>(value.args.size()));
    for (const auto& arg : value.args) {
      text(arg.name);
      optional_text(arg.default_value);
    }
  }
  void body(const ast::HealthcheckInstruction& value) {
    text(value.type);
    command(value.command);
  }
  void body(const ast::OnbuildInstruction& value) { instruction(*value.trigger); }

  std::string take() { return std::move(bytes_); }

 private:
  std::string bytes_;
};

// The reverse of Writer; every read checks what is left and throws Error when it runs out.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  uint32_t integer() {
    need(4);
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i)
      value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes_[at_ + i])) << (8 * i);
    at_ += 4;
    return value;
  }
  int number() { return static_cast<int>(integer()); }
  bool flag() {
    need(1);
    return bytes_[at_++] != 0;
  }
  std::string text() {
    uint32_t size = integer();
    need(size);
    std::string value(bytes_.substr(at_, size));
    at_ += size;
    return value;
  }
  std::optional<std::string> optional_text() {
    if (!flag()) return std::nullopt;
    return text();
  }
  // A count of items that take at least `min_item_size` bytes each: a corrupt count fails here
  // rather than in a reserve of gigabytes.
  uint32_t count(size_t min_item_size) {
    uint32_t value = integer();
    need(static_cast<size_t>(value) * min_item_size);
    return value;
  }
  std::vector<std::string> texts() {
    std::vector<std::string> values(count(4));
    for (auto& value : values) value = text();
    return values;
  }
  ast::Position position() {
    ast::Position value;
    value.line = number();
    value.column = number();
    return value;
  }
  ast::Command command() {
    ast::Command value;
    value.exec_form = flag();
    value.exec_args = texts();
    value.shell_text = text();
    return value;
  }
  std::vector<ast::Heredoc> heredocs() {
    std::vector<ast::Heredoc> values(count(22));
    for (auto& heredoc : values) {
      heredoc.name = text();
      heredoc.content = text();
      heredoc.file_descriptor = integer();
      heredoc.chomp = flag();
      heredoc.expand = flag();
      heredoc.position = position();
    }
    return values;
  }
  std::vector<ast::KeyValue> key_values() {
    std::vector<ast::KeyValue> values(count(8));
    for (auto& pair : values) {
      pair.key = text();
      pair.value = text();
    }
    return values;
  }
  void file_transfer(ast::FileTransfer& value) {
    value.sources = texts();
    value.destination = text();
    value.json_form = flag();
    value.heredocs = heredocs();
  }

  ast::Instruction instruction(int depth) {
    if (depth > 2) throw Error("nested ONBUILD");  // the parser allows one trigger, never nested
    ast::Instruction value;
    value.keyword = text();
    value.source = text();
    value.flags.resize(count(13));
    for (auto& item : value.flags) {
      item.name = text();
      item.value = optional_text();
      item.position = position();
    }
    value.start = position();
    value.end_line = number();
    value.body = body(integer(), depth);
    return value;
  }

  ast::InstructionBody body(uint32_t kind, int depth) {
    static_assert(std::variant_size_v<ast::InstructionBody> == 18,
                  "a new instruction kind needs its case here and its Writer::body");
    switch (kind) {
      case 0: {
        ast::FromInstruction value;
        value.image = text();
        value.stage_name = optional_text();
        value.as_keyword = text();
        return value;
      }
      case 1:
        return ast::MaintainerInstruction{text()};
      case 2: {
        ast::RunInstruction value;
        value.command = command();
        value.heredocs = heredocs();
        return value;
      }
      case 3:
        return ast::CmdInstruction{command()};
      case 4: {
        ast::EnvInstruction value;
        value.variables = key_values();
        value.legacy_form = flag();
        return value;
      }
      case 5:
        return ast::ExposeInstruction{texts()};
      case 6: {
        ast::LabelInstruction value;
        value.labels = key_values();
        value.legacy_form = flag();
        return value;
      }
      case 7: {
        ast::AddInstruction value;
        file_transfer(value);
        return value;
      }
      case 8: {
        ast::CopyInstruction value;
        file_transfer(value);
        return value;
      }
      case 9:
        return ast::EntrypointInstruction{command()};
      case 10: {
        ast::VolumeInstruction value;
        value.paths = texts();
        value.json_form = flag();
        return value;
      }
      case 11:
        return ast::UserInstruction{text()};
      case 12:
        return ast::WorkdirInstruction{text()};
      case 13: {
        ast::ArgInstruction value;
        value.args.resize(count(5));
        for (auto& arg : value.args) {
          arg.name = text();
          arg.default_value = optional_text();
        }
        return value;
      }
      case 14:
        return ast::OnbuildInstruction{instruction(depth + 1)};
      case 15:
        return ast::StopsignalInstruction{text()};
      case 16: {
        ast::HealthcheckInstruction value;
        value.type = text();
        value.command = command();
        return value;
      }
      case 17:
        return ast::ShellInstruction{command()};
      default:
        throw Error("unknown instruction kind " + std::to_string(kind));
    }
  }

  bool done() const { return at_ == bytes_.size(); }

 private:
  void need(size_t size) const {
    if (size > bytes_.size() - at_) throw Error("truncated");
  }

  std::string_view bytes_;
  size_t at_ = 0;
};

// The order of InstructionBody's alternatives is the encoding: Reader::body's cases follow it.
static_assert(
    std::is_same_v<std::variant_alternative_t<0, ast::InstructionBody>, ast::FromInstruction>);
static_assert(
    std::is_same_v<std::variant_alternative_t<8, ast::InstructionBody>, ast::CopyInstruction>);
static_assert(
    std::is_same_v<std::variant_alternative_t<14, ast::InstructionBody>, ast::OnbuildInstruction>);
static_assert(
    std::is_same_v<std::variant_alternative_t<17, ast::InstructionBody>, ast::ShellInstruction>);

}  // namespace

const std::string& ast_codec_version() {
  static const std::string version =
      std::string(SLIPWAY_PARSER_SOURCES_DIGEST) + " antlr4 " + antlr4::RuntimeMetaData::VERSION;
  return version;
}

std::string encode_dockerfile(const ast::Dockerfile& dockerfile) {
  Writer out;
  out.integer(static_cast<uint32_t>(dockerfile.instructions.size()));
  for (const auto& instruction : dockerfile.instructions) out.instruction(instruction);
  out.integer(static_cast<uint32_t>(dockerfile.warnings.size()));
  for (const auto& warning : dockerfile.warnings) {
    out.number(warning.line);
    out.text(warning.message);
  }
  out.text(std::string_view(&dockerfile.escape, 1));
  out.optional_text(dockerfile.syntax);
  out.optional_text(dockerfile.check);
  return out.take();
}

ast::Dockerfile decode_dockerfile(std::string_view bytes) {
  try {
    Reader in(bytes);
    ast::Dockerfile dockerfile;
    dockerfile.instructions.resize(in.count(32));
    for (auto& instruction : dockerfile.instructions) instruction = in.instruction(1);
    dockerfile.warnings.resize(in.count(8));
    for (auto& warning : dockerfile.warnings) {
      warning.line = in.number();
      warning.message = in.text();
    }
    std::string escape = in.text();
    if (escape.size() != 1) throw Error("escape is not one character");
    dockerfile.escape = escape[0];
    dockerfile.syntax = in.optional_text();
    dockerfile.check = in.optional_text();
    if (!in.done()) throw Error("trailing bytes");
    return dockerfile;
  } catch (const Error& e) {
    throw Error(std::string("not an encoded Dockerfile: ") + e.what());
  }
}

}  // namespace slipway::grammar
