// Dockerfile instructions, one per logical line (see DockerfileLexer.g4 for what the input is).
//
// The rules follow how the reference parser (BuildKit's parser.go / line_parsers.go) splits
// each instruction: leading `--flags`, then an instruction-specific argument form. Checks that
// need the values themselves (JSON arrays of strings only, ENV's key=value words) are made when
// the tree is turned into the AST (parser.cpp), where the messages can say what docker says.
parser grammar DockerfileParser;

options { tokenVocab = DockerfileLexer; }

dockerfile : instruction ( NEWLINE instruction )* EOF ;

instruction
    : fromInstruction
    | runInstruction
    | cmdInstruction
    | maintainerInstruction
    | envInstruction
    | exposeInstruction
    | otherInstruction
    | unknownInstruction
    ;

// FROM [--platform=p] image [AS name]
fromInstruction
    : FROM ( WS flags )? WS image=word ( WS AS WS stageName=word )? WS?
    ;

// RUN [--mount=...] ["exec", "form"] | shell form
runInstruction : RUN ( WS flags )? ( WS command )? WS? ;

// CMD ["exec", "form"] | shell form
cmdInstruction : CMD ( WS flags )? ( WS command )? WS? ;

// MAINTAINER the rest of the line
maintainerInstruction : MAINTAINER ( WS flags )? ( WS words )? WS? ;

// ENV key value with spaces   (legacy form: one variable, the value is the rest of the line)
// ENV k=v k2="a b" k3=x\ y    (key=value form: values kept raw)
// Which form it is depends on whether the first word contains '=', so both are parsed as a
// list of quote-aware words here.
envInstruction : ENV ( WS flags )? ( WS envWord ( WS envWord )* )? WS? ;
envWord        : QUOTED_WORD ;

// EXPOSE 80 53/udp $PORT
exposeInstruction : EXPOSE ( WS flags )? ( WS words )? WS? ;

// Known instructions without a typed form yet: flags and whitespace-separated words.
otherInstruction
    : keyword=( LABEL | ADD | COPY | ENTRYPOINT | VOLUME | USER | WORKDIR | ARG | ONBUILD
              | STOPSIGNAL | HEALTHCHECK | SHELL )
      ( WS flags )? ( WS words )? WS?
    ;

// Parsed so that the error can name it (and suggest a keyword); see parser.cpp.
unknownInstruction : UNKNOWN_KEYWORD ( ~NEWLINE )* ;

// Leading `--name[=value]` words; a bare `--` ends them and is dropped.
flags
    : FLAG ( WS FLAG )* ( WS END_OF_FLAGS )?
    | END_OF_FLAGS
    ;

// Exec form (a JSON array, preferred when the whole argument is one) or shell form (the text
// verbatim). A JSON array with non-string elements is still an exec form, so that it can be
// rejected rather than silently run as a shell command.
command
    : execForm
    | shellForm
    ;
execForm  : jsonArray ;
shellForm : ~( WS | NEWLINE ) ( WS? ~( WS | NEWLINE ) )* ;

jsonArray  : LBRACKET WS? ( jsonValue WS? ( COMMA WS? jsonValue WS? )* )? RBRACKET ;
jsonObject : LBRACE WS? ( jsonMember WS? ( COMMA WS? jsonMember WS? )* )? RBRACE ;
jsonMember : STRING WS? COLON WS? jsonValue ;
jsonValue
    : STRING
    | NUMBER
    | JSON_TRUE
    | JSON_FALSE
    | JSON_NULL
    | jsonArray
    | jsonObject
    ;

// Whitespace-separated words (`as` is a word too where it is not FROM's keyword).
words : word ( WS word )* ;
word  : WORD | AS ;
