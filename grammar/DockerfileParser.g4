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
    | entrypointInstruction
    | shellInstruction
    | healthcheckInstruction
    | addInstruction
    | copyInstruction
    | volumeInstruction
    | envInstruction
    | labelInstruction
    | argInstruction
    | maintainerInstruction
    | userInstruction
    | workdirInstruction
    | stopsignalInstruction
    | exposeInstruction
    | onbuildInstruction
    | unknownInstruction
    ;

// ---------------------------------------------------------------------------------------------
// Every instruction is KEYWORD [--flags] arguments; the argument forms are below.

// FROM [--platform=p] image [AS name]
fromInstruction
    : FROM ( WS flags )? WS image=word ( WS as=AS WS stageName=word )? WS?
    ;

// Exec form or shell form: RUN ["sh", "-c", "x"] | RUN x (heredoc bodies come from the line
// scanner; here `<<EOF` is just shell text).
runInstruction        : RUN ( WS flags )? ( WS command )? WS? ;
cmdInstruction        : CMD ( WS flags )? ( WS command )? WS? ;
entrypointInstruction : ENTRYPOINT ( WS flags )? ( WS command )? WS? ;
// Docker wants the exec form; the builder rejects a shell form.
shellInstruction      : SHELL ( WS flags )? ( WS command )? WS? ;

// HEALTHCHECK [--interval=...] CMD command | HEALTHCHECK NONE: the first word is the type,
// whatever it is (the builder checks it), the rest is exec or shell form.
healthcheckInstruction
    : HEALTHCHECK ( WS flags )? ( WS healthcheckType ( WS command )? )? WS?
    ;
healthcheckType : ~( WS | NEWLINE )+ ;

// ADD/COPY [--chown=...] src... dest | ADD/COPY ["src", ..., "dest"] (`<<EOF` sources are
// heredocs), VOLUME /a /b | VOLUME ["/a", "/b"]
addInstruction    : ADD ( WS flags )? ( WS jsonOrWords )? WS? ;
copyInstruction   : COPY ( WS flags )? ( WS jsonOrWords )? WS? ;
volumeInstruction : VOLUME ( WS flags )? ( WS jsonOrWords )? WS? ;

// ENV/LABEL key value with spaces   (legacy form: one pair, the value is the rest of the line)
// ENV/LABEL k=v k2="a b" k3=x\ y    (key=value form: values kept raw)
// Which form it is depends on whether the first word contains '=', so both are parsed as a
// list of quote-aware words here.
envInstruction   : ENV ( WS flags )? ( WS quotedWords )? WS? ;
labelInstruction : LABEL ( WS flags )? ( WS quotedWords )? WS? ;

// ARG name[=default] ... (quote-aware words, split at the first '=' in parser.cpp)
argInstruction : ARG ( WS flags )? ( WS quotedWords )? WS? ;

// The rest of the line as one string.
maintainerInstruction : MAINTAINER ( WS flags )? ( WS words )? WS? ;
userInstruction       : USER ( WS flags )? ( WS words )? WS? ;
workdirInstruction    : WORKDIR ( WS flags )? ( WS words )? WS? ;
stopsignalInstruction : STOPSIGNAL ( WS flags )? ( WS words )? WS? ;

// EXPOSE 80 53/udp $PORT
exposeInstruction : EXPOSE ( WS flags )? ( WS words )? WS? ;

// ONBUILD [--flags] INSTRUCTION: the trigger is parsed like a line of its own (parser.cpp
// rejects ONBUILD ONBUILD, FROM and MAINTAINER as triggers, as docker does).
onbuildInstruction : ONBUILD ( WS flags )? ( WS trigger=instruction )? WS? ;

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

// JSON array of strings (preferred when the whole argument is one), or words separated by
// whitespace in which quotes mean nothing (parseMaybeJSONToList). The words are cut from the
// text in parser.cpp: a token such as a JSON string may hold whitespace.
jsonOrWords : execForm | shellForm ;

// Words that keep quotes and escapes together (parseWords).
quotedWords : QUOTED_WORD ( WS QUOTED_WORD )* ;

// Whitespace-separated words (`as` is a word too where it is not FROM's keyword).
words : word ( WS word )* ;
word  : WORD | AS ;
