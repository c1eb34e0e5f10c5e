// Tokens of a Dockerfile after line scanning (line_scanner.cpp): the input is the logical
// instruction lines joined with '\n' -- continuations, comments, blank lines, parser directives
// and heredoc bodies are already gone.
//
// The input is fed as bytes (one code point per byte, see parser.cpp), so non-ASCII text simply
// falls into the "any other character" sets and token offsets are byte offsets.
//
// Each line starts in the default mode, where the instruction keyword is recognised. The keyword
// then pushes the mode that tokenizes its arguments the way the reference parser splits them:
//   EXEC_ARGS   RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ADD, COPY, VOLUME: JSON arrays (exec
//               form) or free text / whitespace-separated words
//   WORDS       ENV, LABEL, ARG: words that respect quotes and the escape char (parseWords);
//               WORDS_BACKTICK is the same with `# escape=`` in effect
//   PLAIN_ARGS  FROM, EXPOSE, MAINTAINER, USER, WORKDIR, STOPSIGNAL: words separated by
//               whitespace, quotes mean nothing
// ONBUILD pushes nothing: its flags are lexed in the default mode, and then comes the trigger's
// own keyword. The '\n' ending the line pops back to the default mode.
lexer grammar DockerfileLexer;

@members {
  // (Members land in the generated class's public section.)

  // The escape char from the `# escape=` directive; chooses between WORDS and WORDS_BACKTICK.
  char escapeChar = '\\';

  // Flags are only the leading `--` words after the keyword (extractBuilderFlags): once any
  // other argument word has been seen, `--x` is an ordinary word again.
  bool flagsAllowed = false;

  // Whitespace at the start of a line is skipped; after ONBUILD it separates words.
  bool atLineStart = true;

  void pushWordsMode() { pushMode(escapeChar == '`' ? WORDS_BACKTICK : WORDS); }

  std::unique_ptr<antlr4::Token> nextToken() override {
    std::unique_ptr<antlr4::Token> token = antlr4::Lexer::nextToken();
    size_t type = token->getType();
    atLineStart = type == NEWLINE;
    if (type >= FROM && type <= UNKNOWN_KEYWORD) {  // the keywords are declared contiguously
      flagsAllowed = true;
    } else if (type != WS && type != FLAG) {
      flagsAllowed = false;
    }
    return token;
  }
}

// ---------------------------------------------------------------------------------------------
// Default mode: the instruction keyword (case-insensitive).

INNER_WS   : SPACE_CHAR {!atLineStart}? SPACE_CHAR* -> type(WS) ;
LEADING_WS : SPACE_CHARS                      -> skip ;
NEWLINE    : '\n' ;

FROM        : F R O M                         -> pushMode(PLAIN_ARGS) ;
RUN         : R U N                           -> pushMode(EXEC_ARGS) ;
CMD         : C M D                           -> pushMode(EXEC_ARGS) ;
LABEL       : L A B E L                       { pushWordsMode(); } ;
MAINTAINER  : M A I N T A I N E R             -> pushMode(PLAIN_ARGS) ;
EXPOSE      : E X P O S E                     -> pushMode(PLAIN_ARGS) ;
ENV         : E N V                           { pushWordsMode(); } ;
ADD         : A D D                           -> pushMode(EXEC_ARGS) ;
COPY        : C O P Y                         -> pushMode(EXEC_ARGS) ;
ENTRYPOINT  : E N T R Y P O I N T             -> pushMode(EXEC_ARGS) ;
VOLUME      : V O L U M E                     -> pushMode(EXEC_ARGS) ;
USER        : U S E R                         -> pushMode(PLAIN_ARGS) ;
WORKDIR     : W O R K D I R                   -> pushMode(PLAIN_ARGS) ;
ARG         : A R G                           { pushWordsMode(); } ;
ONBUILD     : O N B U I L D ;
STOPSIGNAL  : S T O P S I G N A L             -> pushMode(PLAIN_ARGS) ;
HEALTHCHECK : H E A L T H C H E C K           -> pushMode(EXEC_ARGS) ;
SHELL       : S H E L L                       -> pushMode(EXEC_ARGS) ;

// ONBUILD's flags (see INNER_WS): keywords cannot start with '-', so these only compete with
// UNKNOWN_KEYWORD, which they beat by coming first.
ONBUILD_END_OF_FLAGS : '-' {flagsAllowed}? '-'       -> type(END_OF_FLAGS) ;
ONBUILD_FLAG         : '-' {flagsAllowed}? FLAG_REST -> type(FLAG) ;

// Anything else in keyword position. Longest match makes `FROMX` this and not FROM; the parser
// turns it into "unknown instruction".
UNKNOWN_KEYWORD : ~[ \t\u000B\f\r\n]+         -> pushMode(PLAIN_ARGS) ;

// ---------------------------------------------------------------------------------------------
// Fragments shared by the argument modes.

fragment SPACE_CHAR  : [ \t\u000B\f\r] ;
fragment SPACE_CHARS : SPACE_CHAR+ ;

// A builder flag (`--mount=type=cache`, `--chown="a b"`). Like extractBuilderFlags, '\' always
// escapes here whatever the escape directive says. An unterminated quote or a lone '\' can only
// end the word, so that longest-match never prefers leaving a quote open over closing it.
//
// The flag rules (and INNER_WS) test their predicate after the first character, not before: a
// predicate at the start of a rule is part of the mode's start state, which ANTLR then cannot
// cache, so it rebuilt that state from the ATN for every token (whole parses took twice as
// long). FLAG_REST is a flag word after its first '-'.
fragment FLAG_REST   : '-' ( FLAG_PART+ FLAG_TAIL? | FLAG_TAIL ) ;
fragment FLAG_PART
    : '\\' ~'\n'
    | '"' ( '\\' ~'\n' | ~["\\\n] )* '"'
    | '\'' ( '\\' ~'\n' | ~['\\\n] )* '\''
    | ~[ \t\u000B\f\r\n"'\\]
    ;
fragment FLAG_TAIL
    : '"' ( '\\' ~'\n' | ~["\\\n] )*
    | '\'' ( '\\' ~'\n' | ~['\\\n] )*
    | '\\'
    ;

fragment A : [aA] ; fragment B : [bB] ; fragment C : [cC] ; fragment D : [dD] ;
fragment E : [eE] ; fragment F : [fF] ; fragment G : [gG] ; fragment H : [hH] ;
fragment I : [iI] ; fragment K : [kK] ; fragment L : [lL] ; fragment M : [mM] ;
fragment N : [nN] ; fragment O : [oO] ; fragment P : [pP] ; fragment R : [rR] ;
fragment S : [sS] ; fragment T : [tT] ; fragment U : [uU] ; fragment V : [vV] ;
fragment W : [wW] ; fragment X : [xX] ; fragment Y : [yY] ;

// ---------------------------------------------------------------------------------------------
// Arguments split on whitespace only (FROM, EXPOSE, MAINTAINER, and for now every instruction
// without a typed form).
mode PLAIN_ARGS;

WS              : SPACE_CHARS ;
PLAIN_NEWLINE   : '\n'         -> type(NEWLINE), popMode ;
// A bare `--` ends the flags; rules earlier in the file win ties, so it is not a FLAG.
END_OF_FLAGS    : '-' {flagsAllowed}? '-' ;
FLAG            : '-' {flagsAllowed}? FLAG_REST ;
AS              : A S ;
WORD            : ~[ \t\u000B\f\r\n]+ ;

// ---------------------------------------------------------------------------------------------
// RUN and CMD arguments: enough JSON to recognise a JSON array, and free text for the shell form.
// JSON literals come before TEXT so that `true` or `12` are JSON, while `trueish` or `1.2.3`
// (longer as TEXT) are not. (JSON_ prefix: NULL, TRUE and FALSE are C macros.)
mode EXEC_ARGS;

EXEC_WS           : SPACE_CHARS  -> type(WS) ;
EXEC_NEWLINE      : '\n'         -> type(NEWLINE), popMode ;
EXEC_END_OF_FLAGS : '-' {flagsAllowed}? '-'       -> type(END_OF_FLAGS) ;
EXEC_FLAG         : '-' {flagsAllowed}? FLAG_REST -> type(FLAG) ;

LBRACKET : '[' ;
RBRACKET : ']' ;
LBRACE   : '{' ;
RBRACE   : '}' ;
COMMA    : ',' ;
COLON    : ':' ;
STRING   : '"' ( '\\' ( ["\\/bfnrt] | 'u' HEX HEX HEX HEX ) | ~["\\\u0000-\u001F] )* '"' ;
NUMBER   : '-'? ( '0' | [1-9] [0-9]* ) ( '.' [0-9]+ )? ( [eE] [+-]? [0-9]+ )? ;
JSON_TRUE  : 'true' ;
JSON_FALSE : 'false' ;
JSON_NULL  : 'null' ;
TEXT     : ~[ \t\u000B\f\r\n[\]{},:"]+ ;
// A quote that does not start a valid JSON string: shell-form text, e.g. `echo "it's`.
STRAY_QUOTE : '"' ;

fragment HEX : [0-9a-fA-F] ;

// ---------------------------------------------------------------------------------------------
// ENV arguments: parseWords. Quotes group words (kept raw), the escape char keeps the next
// character in the word (both kept raw); inside single quotes nothing escapes. The two modes
// differ only in the escape char.
mode WORDS;

WORDS_WS           : SPACE_CHARS  -> type(WS) ;
WORDS_NEWLINE      : '\n'         -> type(NEWLINE), popMode ;
WORDS_END_OF_FLAGS : '-' {flagsAllowed}? '-'       -> type(END_OF_FLAGS) ;
WORDS_FLAG         : '-' {flagsAllowed}? FLAG_REST -> type(FLAG) ;
// The escape char is the only thing that could make the word longer here, so a trailing one
// (`\\\` at the end of a line) just ends the word.
QUOTED_WORD        : ( BS_PART+ BS_TAIL? | BS_TAIL ) ;

fragment BS_PART
    : '\\' ~'\n'
    | '"' ( '\\' ~'\n' | ~["\\\n] )* '"'
    | '\'' ~['\n]* '\''
    | ~[ \t\u000B\f\r\n"'\\]
    ;
// Unterminated quotes run to the end of the line; they and a lone escape char can only end a
// word (see FLAG_REST).
fragment BS_TAIL
    : '"' ( '\\' ~'\n' | ~["\\\n] )*
    | '\'' ~['\n]*
    | '\\'
    ;

mode WORDS_BACKTICK;

BT_WS           : SPACE_CHARS  -> type(WS) ;
BT_NEWLINE      : '\n'         -> type(NEWLINE), popMode ;
BT_END_OF_FLAGS : '-' {flagsAllowed}? '-'       -> type(END_OF_FLAGS) ;
BT_FLAG         : '-' {flagsAllowed}? FLAG_REST -> type(FLAG) ;
BT_QUOTED_WORD  : ( BT_PART+ BT_TAIL? | BT_TAIL ) -> type(QUOTED_WORD) ;

fragment BT_PART
    : '`' ~'\n'
    | '"' ( '`' ~'\n' | ~["`\n] )* '"'
    | '\'' ~['\n]* '\''
    | ~[ \t\u000B\f\r\n"'`]
    ;
fragment BT_TAIL
    : '"' ( '`' ~'\n' | ~["`\n] )*
    | '\'' ~['\n]*
    | '`'
    ;
