// A parsed Dockerfile as bytes, so that a later build of the same Dockerfile skips the parser.
// The builder keeps the bytes as a memo in the store, named by a digest of the Dockerfile's
// text and ast_codec_version() (builder/builder.cpp). On this machine ANTLR's set-up and first
// predictions cost a 10-step cached build 6.5 M of its 18 M instructions and about 100 page
// faults; decoding the memo costs a few thousand.
//
// Not an exchange format: the version changes whenever the grammar, the parser, this codec or the
// ANTLR runtime changes, and bytes of another version are never decoded. A hand-made binary form
// (length-prefixed strings, fixed-size integers), not JSON: Dockerfile text need not be UTF-8,
// and nlohmann::json refuses to write strings that are not.
#pragma once

#include <string>
#include <string_view>

#include "grammar/ast.h"

namespace slipway::grammar {

// Names this build of slipway's parser: a digest of the grammar's and the parser's sources (taken
// when slipway is configured) and the ANTLR runtime's version.
const std::string& ast_codec_version();

std::string encode_dockerfile(const ast::Dockerfile& dockerfile);

// The Dockerfile encode_dockerfile was given. Throws Error when `bytes` are not one (truncated,
// trailing bytes, an unknown instruction kind).
ast::Dockerfile decode_dockerfile(std::string_view bytes);

}  // namespace slipway::grammar
