// Unit tests of the Go-template engine (template/): the expected strings are what Go's
// text/template with docker's functions prints for the same template and data.
#include "template/template.h"

#include <gtest/gtest.h>

#include "template/format.h"

namespace slipway::gotemplate {
namespace {

std::string run(const std::string& text, const Value& data, const ExecuteOptions& options = {}) {
  return Template::parse(text).execute(data, options);
}

std::string parse_error(const std::string& text) {
  try {
    Template::parse(text);
  } catch (const TemplateError& e) {
    return e.what();
  }
  return "(parsed)";
}

std::string execute_error(const std::string& text, const Value& data,
                          const ExecuteOptions& options = {}) {
  try {
    run(text, data, options);
  } catch (const TemplateError& e) {
    return e.what();
  }
  return "(executed)";
}

const Value kContainer = Value::parse(R"({
  "Id": "4f66ad9a0b2e",
  "Name": "/web",
  "Config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh", "-c", "echo hi"],
             "Labels": {"com.example.vendor": "ACME", "version": "1.0"}},
  "State": {"Status": "running", "Running": true, "ExitCode": 0, "Pid": 42},
  "Mounts": [],
  "Size": 1024,
  "Ratio": 0.5
})");

TEST(TemplateTest, FieldsAndNestedFields) {
  EXPECT_EQ(run("{{.Id}}", kContainer), "4f66ad9a0b2e");
  EXPECT_EQ(run("{{.State.Status}} {{.State.Pid}}", kContainer), "running 42");
  EXPECT_EQ(run("{{ .Config.Env }}", kContainer), "[PATH=/bin A=1]");
  EXPECT_EQ(run("{{.Config.Labels}}", kContainer), "map[com.example.vendor:ACME version:1.0]");
  EXPECT_EQ(run("{{.State.Running}} {{.Ratio}} {{.Mounts}}", kContainer), "true 0.5 []");
  EXPECT_EQ(run("{{.Config.Labels.version}}", kContainer), "1.0");
  EXPECT_EQ(run("{{.Config.Labels.missing}}", kContainer), "<no value>");
  EXPECT_EQ(run("{{.}}", Value("plain")), "plain");
  EXPECT_EQ(run("text only\n", kContainer), "text only\n");
}

TEST(TemplateTest, RangeIfElseWith) {
  EXPECT_EQ(run("{{range .Config.Env}}[{{.}}]{{end}}", kContainer), "[PATH=/bin][A=1]");
  EXPECT_EQ(run("{{range $i, $e := .Config.Cmd}}{{$i}}={{$e}} {{end}}", kContainer),
            "0=sh 1=-c 2=echo hi ");
  EXPECT_EQ(run("{{range $k, $v := .Config.Labels}}{{$k}}:{{$v}};{{end}}", kContainer),
            "com.example.vendor:ACME;version:1.0;");
  EXPECT_EQ(run("{{range .Mounts}}x{{else}}none{{end}}", kContainer), "none");
  EXPECT_EQ(
      run("{{range .Config.Cmd}}{{if eq . \"-c\"}}{{continue}}{{end}}{{.}},{{end}}", kContainer),
      "sh,echo hi,");
  EXPECT_EQ(run("{{range .Config.Cmd}}{{if eq . \"-c\"}}{{break}}{{end}}{{.}}{{end}}", kContainer),
            "sh");
  EXPECT_EQ(run("{{if .State.Running}}up{{else}}down{{end}}", kContainer), "up");
  EXPECT_EQ(run("{{if eq .State.ExitCode 1}}one{{else if .State.Running}}running{{else}}?{{end}}",
                kContainer),
            "running");
  EXPECT_EQ(run("{{if not .Mounts}}no mounts{{end}}", kContainer), "no mounts");
  EXPECT_EQ(run("{{with .State}}{{.Status}}/{{$.Name}}{{end}}", kContainer), "running//web");
  EXPECT_EQ(run("{{with .Config.Labels.missing}}x{{else}}unset{{end}}", kContainer), "unset");
  EXPECT_EQ(run("{{$n := .Name}}{{$n}} {{$n = \"other\"}}{{$n}}", kContainer), "/web other");
  EXPECT_EQ(run("{{if and .State.Running (gt .Size 1000)}}big{{end}}", kContainer), "big");
  EXPECT_EQ(run("{{or .Config.Labels.missing \"default\"}}", kContainer), "default");
  EXPECT_EQ(run("a  {{- /* comment */ -}}  b", kContainer), "ab");
  EXPECT_EQ(run("{{range 3}}{{.}}{{end}}", kContainer), "012");
}

TEST(TemplateTest, DockerFunctions) {
  EXPECT_EQ(run("{{json .State}}", kContainer),
            R"({"Status":"running","Running":true,"ExitCode":0,"Pid":42})");
  EXPECT_EQ(run("{{json .Config.Env}}", kContainer), R"(["PATH=/bin","A=1"])");
  EXPECT_EQ(run("{{json \"<a&b>\"}}", kContainer), R"("<a&b>")");
  EXPECT_EQ(run("{{join .Config.Cmd \" \"}}", kContainer), "sh -c echo hi");
  EXPECT_EQ(
      run("{{lower \"MiXed\"}} {{upper .State.Status}} {{title \"hello big world\"}}", kContainer),
      "mixed RUNNING Hello Big World");
  EXPECT_EQ(run("{{split \"a,b,c\" \",\"}}", kContainer), "[a b c]");
  EXPECT_EQ(run("{{index (split .Name \"/\") 1}}", kContainer), "web");
  EXPECT_EQ(run("{{truncate .Id 4}}|{{truncate \"ab\" 5}}", kContainer), "4f66|ab");
  EXPECT_EQ(run("[{{pad .State.Status 2 3}}][{{pad \"\" 2 3}}]", kContainer), "[  running   ][]");
  EXPECT_EQ(run("{{println .State.Status .State.Pid}}", kContainer), "running 42\n");
  EXPECT_EQ(run("{{print \"a\" 1 2 \"b\"}}", kContainer), "a1 2b");
  EXPECT_EQ(
      run("{{printf \"%s has %d (%5.2f) %q %v\" .Name .Size .Ratio \"x\" .Mounts}}", kContainer),
      "/web has 1024 ( 0.50) \"x\" []");
  EXPECT_EQ(run("{{index .Config.Env 1}} {{index .Config.Labels \"version\"}}", kContainer),
            "A=1 1.0");
  EXPECT_EQ(run("{{len .Config.Env}} {{len .Name}} {{len .Config.Labels}}", kContainer), "2 4 2");
  EXPECT_EQ(run("{{.State.Status | upper | printf \"<%s>\"}}", kContainer), "<RUNNING>");
  EXPECT_EQ(run("{{(index .Config.Cmd 0) | len}}", kContainer), "2");
}

// Go's fmt takes a width or precision past a million as the end of the format (the fuzzer found
// the int overflowing on a long run of digits).
TEST(TemplateTest, PrintfWidthAndPrecisionPastAMillion) {
  EXPECT_EQ(run("{{printf \"a%9999999999999d|%d\" 1 2}}", kContainer),
            "a%!(NOVERB)%!(EXTRA int=1, int=2)");
  EXPECT_EQ(run("{{printf \"b%.99999999999f|\" 1.5}}", kContainer),
            "b%!(NOVERB)%!(EXTRA float64=1.5)");
  EXPECT_EQ(run("{{printf \"%4d|%-3d|%.1f\" 7 8 2.25}}", kContainer), "   7|8  |2.2");
}

TEST(TemplateTest, GoParseErrors) {
  EXPECT_EQ(parse_error("{{.ID"), "template: :1: unclosed action");
  EXPECT_EQ(parse_error("{{foo .ID}}"), "template: :1: function \"foo\" not defined");
  EXPECT_EQ(parse_error("{{if .A}}x"), "template: :1: unexpected EOF");
  EXPECT_EQ(parse_error("x\n{{end}}"), "template: :2: unexpected {{end}}");
  EXPECT_EQ(parse_error("{{}}"), "template: :1: missing value for command");
  EXPECT_EQ(parse_error("{{$x}}"), "template: :1: undefined variable \"$x\"");
  EXPECT_EQ(parse_error("{{\"abc}}"), "template: :1: unterminated quoted string");
  EXPECT_EQ(parse_error("{{.A ! }}"), "template: :1: unrecognized character in action: U+0021 '!'");
  EXPECT_EQ(parse_error("{{break}}"), "template: :1: {{break}} outside {{range}}");
  EXPECT_EQ(parse_error("{{(.A}}"), "template: :1: unclosed left paren");
  std::string deep(5000, '(');
  EXPECT_EQ(parse_error("{{" + deep), "template: :1: unclosed action");
  std::string nested;
  for (int i = 0; i < 2000; ++i) nested += "(";
  nested = "{{" + nested + "1";
  for (int i = 0; i < 2000; ++i) nested += ")";
  EXPECT_EQ(parse_error(nested + "}}"), "template: :1: max expression depth exceeded");
  std::string blocks;
  for (int i = 0; i < 5000; ++i) blocks += "{{if 1}}";
  EXPECT_EQ(parse_error(blocks), "template: :1: max expression depth exceeded");
}

TEST(TemplateTest, GoExecutionErrors) {
  ExecuteOptions ps;
  ps.type_name = "*formatter.ContainerContext";
  EXPECT_EQ(execute_error("{{.Foo}}", Value::parse(R"({"ID":"1"})"), ps),
            "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type "
            "*formatter.ContainerContext");
  EXPECT_EQ(execute_error("{{join .Names \" or \"}}", Value::parse(R"({"Names":"a"})")),
            "template: :1:7: executing \"\" at <.Names>: wrong type for value; expected "
            "[]string; got string");
  EXPECT_EQ(execute_error("{{index .L 5}}", Value::parse(R"({"L":[1]})")),
            "template: :1:2: executing \"\" at <index .L 5>: error calling index: index out of "
            "range: 5");
  EXPECT_EQ(
      execute_error("{{join .L}}", Value::parse(R"({"L":[]})")),
      "template: :1:2: executing \"\" at <join>: wrong number of args for join: want 2 got 1");
  EXPECT_EQ(execute_error("{{.A.B}}", Value::parse(R"({"A":"text"})")),
            "template: :1:2: executing \"\" at <.A.B>: can't evaluate field B in type string");
}

TEST(TemplateTest, MethodsWithArguments) {
  ExecuteOptions options;
  options.type_name = "*formatter.ContainerContext";
  options.methods["Label"] = [](const Value& row, const std::vector<Value>& args) -> Value {
    return row["Labels"].value(args.at(0).get<std::string>(), "");
  };
  Value row = Value::parse(R"({"Labels":{"tier":"web"}})");
  EXPECT_EQ(run("{{.Label \"tier\"}}|{{.Label \"none\"}}", row, options), "web|");
}

TEST(TemplateTest, TablePrefixHeaderAndAlignment) {
  Value headers = Value::parse(R"({"ID":"CONTAINER ID","Image":"IMAGE","Status":"STATUS",
                                  "Names":"NAMES"})");
  RowFormatter formatter("table {{.ID}}\\t{{.Image}}\\t{{.Status}}\\t{{.Names}}", "", headers);
  EXPECT_TRUE(formatter.is_table());
  std::vector<Value> rows = {
      Value::parse(
          R"({"ID":"4f66ad9a0b2e","Image":"busybox","Status":"Up 2 minutes","Names":"web"})"),
      Value::parse(
          R"({"ID":"0b1d6c3e8f2a","Image":"classic:latest","Status":"Exited (0) 1 second ago","Names":"db"})")};
  EXPECT_EQ(formatter.render(rows),
            "CONTAINER ID   IMAGE            STATUS                    NAMES\n"
            "4f66ad9a0b2e   busybox          Up 2 minutes              web\n"
            "0b1d6c3e8f2a   classic:latest   Exited (0) 1 second ago   db\n");
  // Short columns are at least 10 wide; functions in the header print the header name.
  RowFormatter upper("table {{upper .Names}}\\t{{.ID}}", "", headers);
  EXPECT_EQ(upper.render({rows[0]}), "NAMES     CONTAINER ID\nWEB       4f66ad9a0b2e\n");
  // Without `table`: no header, no alignment, escapes still expanded.
  RowFormatter raw("{{.Names}}\\t{{.Status}}", "", headers);
  EXPECT_EQ(raw.render(rows), "web\tUp 2 minutes\ndb\tExited (0) 1 second ago\n");
  // "" and "table" are the command's default table.
  RowFormatter fallback("table", "table {{.Names}}", headers);
  EXPECT_EQ(fallback.render(rows), "NAMES\nweb\ndb\n");
}

TEST(TemplateTest, JsonFormatIsOneObjectPerLine) {
  RowFormatter formatter("json", "table {{.ID}}", Value::object());
  EXPECT_EQ(formatter.render({Value::parse(R"({"ID":"1","Names":"a"})"),
                              Value::parse(R"({"ID":"2","Names":"b"})")}),
            "{\"ID\":\"1\",\"Names\":\"a\"}\n{\"ID\":\"2\",\"Names\":\"b\"}\n");
}

TEST(TemplateTest, TabwriterColumnBlocks) {
  // A line with fewer cells ends the column block, as in Go's tabwriter.
  EXPECT_EQ(tabwrite("a\tb\tc\nlonger cell\tx\tlast\n"),
            "a             b         c\nlonger cell   x         last\n");
  EXPECT_EQ(tabwrite("one\nab\tcd\n"), "one\nab        cd\n");
}

}  // namespace
}  // namespace slipway::gotemplate
