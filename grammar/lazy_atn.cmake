# Run after the ANTLR tool (grammar/CMakeLists.txt): makes the generated lexer and parser
# deserialize their ATN when the first one is constructed instead of in a static initializer.
# ANTLR 4.7's C++ target does it in `X::Initializer X::_init;`, which made every slipway command
# (ps, images, ...) decode both grammars before main: a fifth of `ps -a`'s page faults (issue 14).
# A function-local static in the constructor runs the same Initializer once, thread-safe.
# It also deserializes without verifyATN: that check of the generated tables' consistency was
# 2.3 M of a cached build's 30 M instructions, every run, for data fixed at build time;
# grammar_test verifies both ATNs instead.
# Usage: cmake -DDIR=<generated dir> -P lazy_atn.cmake
foreach(pair "DockerfileLexer;CharStream *input) : Lexer(input) {"
             "DockerfileParser;TokenStream *input) : Parser(input) {")
  list(GET pair 0 class)
  list(GET pair 1 signature_tail)
  set(file ${DIR}/${class}.cpp)
  file(READ ${file} text)
  set(eager "${class}::Initializer ${class}::_init;")
  set(constructor "${class}::${class}(${signature_tail}\n")
  string(FIND "${text}" "${eager}" eager_at)
  string(FIND "${text}" "${constructor}" constructor_at)
  if(eager_at EQUAL -1 OR constructor_at EQUAL -1)
    message(FATAL_ERROR "lazy_atn.cmake: ${file} is not laid out as ANTLR 4.7 writes it")
  endif()
  set(deserializer "  atn::ATNDeserializer deserializer;\n")
  string(FIND "${text}" "${deserializer}" deserializer_at)
  if(deserializer_at EQUAL -1)
    message(FATAL_ERROR "lazy_atn.cmake: ${file} has no ATNDeserializer where ANTLR 4.7 puts it")
  endif()
  string(REPLACE "${deserializer}"
         "  atn::ATNDeserializationOptions options;  // lazy_atn.cmake\n  options.setVerifyATN(false);\n  atn::ATNDeserializer deserializer(options);\n"
         text "${text}")
  string(REPLACE "${eager}" "" text "${text}")
  string(REPLACE "${constructor}"
         "${constructor}  static const Initializer initialized;  // lazy_atn.cmake\n  (void)initialized;\n"
         text "${text}")
  file(WRITE ${file} "${text}")
endforeach()
