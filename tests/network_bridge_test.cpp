// Container networking through the real binary (issue 10's acceptance 1-4). Every test runs
// slipway inside a network namespace it makes ("host"), joined by a veth to a second one
// ("outside", another machine: 10.203.0.2, the host being 10.203.0.1), and deletes both.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/test_support.h"

namespace slipway::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

CommandResult must(const CommandResult& result, const std::string& what) {
  EXPECT_EQ(result.exit_code, 0) << what << ": " << result.out << result.err;
  return result;
}

class NetworkTest : public BusyboxStoreTest {
 protected:
  void SetUp() override {
    BusyboxStoreTest::SetUp();
    static int counter = 0;
    std::string suffix = std::to_string(::getpid()) + "-" + std::to_string(counter++);
    host_ = "slwt-h-" + suffix;
    outside_ = "slwt-o-" + suffix;
    for (const auto& ns : {host_, outside_})
      must(run_program({"ip", "netns", "add", ns}), "ip netns add");
    std::string veth = "slwt" + std::to_string(::getpid() % 100000);
    must(run_program({"nsenter", "--net=/run/netns/" + host_, "sh", "-c",
                      "set -e; ip link set lo up; ip link add " + veth + "a type veth peer name " +
                          veth + "b; ip link set " + veth + "b netns " + outside_ +
                          "; ip addr add 10.203.0.1/24 dev " + veth + "a; ip link set " + veth +
                          "a up"}),
         "host side");
    must(run_program({"nsenter", "--net=/run/netns/" + outside_, "sh", "-c",
                      "set -e; ip link set lo up; ip addr add 10.203.0.2/24 dev " + veth +
                          "b; ip link set " + veth + "b up"}),
         "outside side");
    links_before_ = link_names();
    ruleset_before_ = in_host({"nft", "list", "ruleset"}).out;
  }

  void TearDown() override {
    for (const auto& line : split_lines(slip({"ps", "-aq"}).out)) slip({"rm", "-f", line});
    for (const auto& id : split_lines(slip({"network", "ls", "-q"}).out))
      slip({"network", "rm", id});
    if (outside_server_ > 0) {
      ::kill(outside_server_pid(), SIGKILL);
    }
    for (const auto& ns : {host_, outside_}) run_program({"ip", "netns", "del", ns});
  }

  static std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) lines.push_back(line);
    return lines;
  }

  CommandResult in_host(std::vector<std::string> argv) {
    argv.insert(argv.begin(), "--net=/run/netns/" + host_);
    argv.insert(argv.begin(), "nsenter");
    return run_program(argv);
  }
  CommandResult in_outside(std::vector<std::string> argv) {
    argv.insert(argv.begin(), "--net=/run/netns/" + outside_);
    argv.insert(argv.begin(), "nsenter");
    return run_program(argv);
  }
  CommandResult slip(std::vector<std::string> args) {
    args.insert(args.begin(), {SLIPWAY_BINARY, "--root", root().string()});
    return in_host(args);
  }
  std::string slip_ok(std::vector<std::string> args) {
    CommandResult result = slip(args);
    EXPECT_EQ(result.exit_code, 0) << args.front() << ": " << result.out << result.err;
    return result.out;
  }

  json inspect(const std::string& container) {
    CommandResult result = slip({"inspect", container});
    if (result.exit_code != 0) {
      result = slip({"container", "inspect", container});
    }
    EXPECT_EQ(result.exit_code, 0) << result.err;
    json parsed = json::parse(result.out, nullptr, false);
    return parsed.is_array() && !parsed.empty() ? parsed[0] : json::object();
  }
  std::string address_of(const std::string& container, const std::string& network = "bridge") {
    return inspect(container)["NetworkSettings"]["Networks"][network].value("IPAddress", "");
  }

  // The interface names of the host namespace.
  std::set<std::string> link_names() {
    std::set<std::string> names;
    for (const auto& line : split_lines(in_host({"ip", "-o", "link", "show"}).out)) {
      std::smatch match;
      if (std::regex_search(line, match, std::regex(R"(^\d+: ([^:@]+))"))) names.insert(match[1]);
    }
    return names;
  }

  // An image whose CMD serves "hello from NAME" on port 80, and EXPOSEs it.
  void build_web_image() {
    auto result = build(
        "FROM busybox\nEXPOSE 80\nENV GREETING=hi\n"
        "CMD [\"sh\", \"-c\", \"mkdir -p /www && echo hello from $(hostname) > /www/index.html "
        "&& exec httpd -f -p 80 -h /www\"]\n",
        "web");
    ASSERT_EQ(result.exit_code, 0) << result.out << result.err;
  }

  // `wget -qO- URL` from a new container, retried while the server comes up. (busybox wget's own
  // -T crashes on a timeout: `timeout` bounds it instead.)
  CommandResult fetch_from_container(std::vector<std::string> run_options, const std::string& url) {
    std::vector<std::string> args = {"run", "--rm"};
    args.insert(args.end(), run_options.begin(), run_options.end());
    args.insert(args.end(), {"busybox", "sh", "-c",
                             "for i in $(seq 50); do timeout 3 wget -qO- " + url +
                                 " && exit 0; sleep 0.1; done; exit 1"});
    return slip(args);
  }

  pid_t outside_server_pid() { return outside_server_; }

  std::string host_, outside_;
  std::set<std::string> links_before_;
  std::string ruleset_before_;
  pid_t outside_server_ = 0;
};

TEST_F(NetworkTest, DefaultBridgeGivesAddressesThatReachEachOther) {
  build_web_image();
  std::string ifconfig = slip_ok({"run", "--rm", "busybox", "ifconfig", "eth0"});
  EXPECT_TRUE(std::regex_search(ifconfig, std::regex(R"(inet addr:172\.17\.0\.\d+)"))) << ifconfig;
  EXPECT_NE(ifconfig.find("HWaddr 02:42:AC:11:00"), std::string::npos) << ifconfig;

  std::string id = split_lines(slip_ok({"run", "-d", "--name", "db", "web"})).at(0);
  json db = inspect("db");
  std::string ip = db["NetworkSettings"].value("IPAddress", "");
  EXPECT_TRUE(ip.starts_with("172.17.0.")) << db.dump();
  EXPECT_EQ(db["NetworkSettings"].value("Gateway", ""), "172.17.0.1");
  EXPECT_EQ(db["NetworkSettings"].value("IPPrefixLen", 0), 16);
  EXPECT_EQ(db["NetworkSettings"]["Networks"]["bridge"].value("IPAddress", ""), ip);

  // By address from another container; its /etc/hosts and hostname are its own.
  CommandResult got = fetch_from_container({}, "http://" + ip + "/");
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, "hello from " + id.substr(0, 12) + "\n");
  std::string hosts = slip_ok({"exec", "db", "cat", "/etc/hosts"});
  EXPECT_NE(hosts.find(ip + "\t" + id.substr(0, 12)), std::string::npos) << hosts;

  // --link db:mysql: the alias resolves, and docker's legacy variables are set.
  got = fetch_from_container({"--link", "db:mysql"}, "http://mysql/");
  EXPECT_EQ(got.out, "hello from " + id.substr(0, 12) + "\n") << got.err;
  std::string env =
      slip_ok({"run", "--rm", "--name", "web1", "--link", "db:mysql", "busybox", "env"});
  EXPECT_NE(env.find("MYSQL_PORT_80_TCP_ADDR=" + ip + "\n"), std::string::npos) << env;
  EXPECT_NE(env.find("MYSQL_PORT=tcp://" + ip + ":80\n"), std::string::npos) << env;
  EXPECT_NE(env.find("MYSQL_PORT_80_TCP_PROTO=tcp\n"), std::string::npos) << env;
  EXPECT_NE(env.find("MYSQL_NAME=/web1/mysql\n"), std::string::npos) << env;
  EXPECT_NE(env.find("MYSQL_ENV_GREETING=hi\n"), std::string::npos) << env;

  // --add-host, --dns and --dns-search land in the files.
  std::string files = slip_ok({"run", "--rm", "--add-host", "example.test:10.1.2.3", "--dns",
                               "10.0.0.53", "--dns-search", "corp.test", "busybox", "sh", "-c",
                               "cat /etc/hosts /etc/resolv.conf"});
  EXPECT_NE(files.find("10.1.2.3\texample.test"), std::string::npos) << files;
  EXPECT_NE(files.find("nameserver 10.0.0.53"), std::string::npos) << files;
  EXPECT_NE(files.find("search corp.test"), std::string::npos) << files;
}

TEST_F(NetworkTest, UserNetworksResolveNamesAndAreIsolated) {
  build_web_image();
  slip_ok({"network", "create", "front"});
  slip_ok({"network", "create", "--subnet", "10.77.0.0/24", "back"});
  std::string id = split_lines(slip_ok({"run", "-d", "--name", "api", "--network", "front",
                                        "--network-alias", "service", "web"}))
                       .at(0);
  std::string expected = "hello from " + id.substr(0, 12) + "\n";
  EXPECT_EQ(fetch_from_container({"--network", "front"}, "http://api/").out, expected);
  EXPECT_EQ(fetch_from_container({"--network", "front"}, "http://service/").out, expected);
  EXPECT_EQ(fetch_from_container({"--network", "front"}, "http://" + id.substr(0, 12) + "/").out,
            expected);
  std::string api_ip = address_of("api", "front");
  EXPECT_FALSE(api_ip.empty());

  // Another network's container reaches neither the name nor the address.
  CommandResult blocked = slip({"run", "--rm", "--network", "back", "busybox", "timeout", "3",
                                "wget", "-qO-", "http://" + api_ip + "/"});
  EXPECT_NE(blocked.exit_code, 0) << blocked.out;
  std::string back_ip =
      split_lines(slip_ok({"run", "--rm", "--network", "back", "--ip", "10.77.0.50", "busybox",
                           "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"}))
          .at(0);
  EXPECT_EQ(back_ip, "10.77.0.50/24");

  // connect: a second interface on back, and names of back resolve from then on.
  slip_ok({"network", "connect", "back", "api"});
  EXPECT_FALSE(address_of("api", "back").empty());
  EXPECT_EQ(fetch_from_container({"--network", "back"}, "http://api/").out, expected);
  slip_ok({"network", "disconnect", "back", "api"});

  json inspected = json::parse(slip_ok({"network", "inspect", "front"}));
  EXPECT_EQ(inspected[0]["Containers"].size(), 1u) << inspected.dump();
  EXPECT_NE(slip_ok({"network", "ls"}).find("front"), std::string::npos);
}

TEST_F(NetworkTest, PublishedPortsAnswerOtherHostsAndLoopbackAndContainersReachOut) {
  build_web_image();
  std::string id = split_lines(slip_ok({"run", "-d", "-p", "8080:80", "web"})).at(0);
  std::string expected = "hello from " + id.substr(0, 12) + "\n";
  auto wget_retry = [&](bool outside, const std::string& url) {
    CommandResult result;
    for (int i = 0; i < 50; ++i) {
      std::vector<std::string> argv = {"timeout", "3", "busybox", "wget", "-qO-", url};
      result = outside ? in_outside(argv) : in_host(argv);
      if (result.exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return result;
  };
  EXPECT_EQ(wget_retry(true, "http://10.203.0.1:8080/").out, expected);
  EXPECT_EQ(wget_retry(false, "http://127.0.0.1:8080/").out, expected);

  std::string published = split_lines(slip_ok({"run", "-d", "-P", "web"})).at(0);
  std::string port = slip_ok({"port", published, "80"});
  std::smatch match;
  ASSERT_TRUE(std::regex_search(port, match, std::regex(R"(0\.0\.0\.0:(\d+))"))) << port;
  EXPECT_EQ(wget_retry(true, "http://10.203.0.1:" + match[1].str() + "/").out,
            "hello from " + published.substr(0, 12) + "\n");

  // Out: a container reaches a server on the outside machine (masqueraded as the host).
  ScratchDir www;
  write_text(www.path() / "index.html", "outside\n");
  pid_t server = ::fork();
  if (server == 0) {
    ::execlp("nsenter", "nsenter", ("--net=/run/netns/" + outside_).c_str(), "busybox", "httpd",
             "-f", "-p", "8000", "-h", www.path().c_str(), nullptr);
    ::_exit(127);
  }
  outside_server_ = server;
  EXPECT_EQ(fetch_from_container({}, "http://10.203.0.2:8000/").out, "outside\n");
  ::kill(server, SIGKILL);
  ::waitpid(server, nullptr, 0);
  outside_server_ = 0;
}

TEST_F(NetworkTest, ConcurrentRunsGetDistinctAddressesAndCrashesLeaveNothing) {
  // 4 processes start 5 containers each, at once.
  std::string slipway = std::string(SLIPWAY_BINARY) + " --root " + root().string();
  std::string loop =
      "for i in 1 2 3 4 5; do " + slipway + " run -d busybox sleep 300 || exit 1; done";
  must(in_host({"bash", "-c",
                "(" + loop + ") & a=$!; (" + loop + ") & b=$!; (" + loop + ") & c=$!; (" + loop +
                    ") & d=$!; wait $a && wait $b && wait $c && wait $d"}),
       "concurrent runs");
  std::set<std::string> addresses;
  std::vector<std::string> ids = split_lines(slip_ok({"ps", "-q", "--no-trunc"}));
  ASSERT_EQ(ids.size(), 20u);
  for (const auto& id : ids) addresses.insert(address_of(id));
  EXPECT_EQ(addresses.size(), 20u);
  EXPECT_EQ(addresses.count(""), 0u);

  // SIGKILL of a detached container's supervisor: its address is reclaimed.
  slip_ok({"run", "-d", "--name", "victim", "busybox", "sleep", "300"});
  std::string victim_ip = address_of("victim");
  int supervisor = inspect("victim")["State"]["Supervisor"].value("Pid", 0);
  ASSERT_GT(supervisor, 0);
  ::kill(supervisor, SIGKILL);
  // SIGKILL of a CLI mid-run (the foreground run is its own supervisor).
  pid_t cli = ::fork();
  if (cli == 0) {
    ::execlp("nsenter", "nsenter", ("--net=/run/netns/" + host_).c_str(), SLIPWAY_BINARY, "--root",
             root().c_str(), "run", "--name", "cli", "busybox", "sleep", "300", nullptr);
    ::_exit(127);
  }
  for (int i = 0; i < 100 && slip({"inspect", "cli"}).out.find("\"running\"") == std::string::npos;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string cli_ip = address_of("cli");
  EXPECT_FALSE(cli_ip.empty());
  ::kill(cli, SIGKILL);
  ::waitpid(cli, nullptr, 0);
  // The next runs get addresses, the reclaimed ones among them, with no conflict.
  std::set<std::string> again;
  for (int i = 0; i < 2; ++i) {
    std::string ip = split_lines(slip_ok({"run", "--rm", "busybox", "sh", "-c",
                                          "ip -4 -o addr show eth0 | awk '{print $4}'"}))
                         .at(0);
    again.insert(ip.substr(0, ip.find('/')));
  }
  EXPECT_EQ(again.size(), 1u);  // one freed address, given again after the first run ended
  EXPECT_TRUE(again.count(victim_ip) || again.count(cli_ip)) << victim_ip << " " << cli_ip;

  // After rm -f of all and network rm of all: only the default bridge and its rules are new.
  slip_ok({"network", "create", "extra"});
  slip_ok({"run", "-d", "--network", "extra", "busybox", "sleep", "300"});
  for (const auto& id : split_lines(slip_ok({"ps", "-aq"}))) slip_ok({"rm", "-f", id});
  slip_ok({"network", "rm", "extra"});
  std::set<std::string> expected = links_before_;
  expected.insert("slipway0");
  std::set<std::string> now;
  for (int i = 0; i < 100; ++i) {  // the kernel deletes a dead namespace's veths asynchronously
    now = link_names();
    if (now == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(now, expected);
  std::string ruleset = in_host({"nft", "list", "ruleset"}).out;
  size_t table = ruleset.find("table ip slipway");
  ASSERT_NE(table, std::string::npos) << ruleset;
  EXPECT_EQ(ruleset.find("slw-"), std::string::npos) << ruleset;
  EXPECT_EQ(ruleset.substr(0, table), ruleset_before_);
  std::string addresses_now = in_host({"ip", "-o", "-4", "addr", "show"}).out;
  EXPECT_EQ(count_lines_containing(addresses_now, "172."), 1) << addresses_now;  // the gateway
}

TEST_F(NetworkTest, BadInputIsRefusedWithNothingLeftBehind) {
  slip_ok({"network", "create", "--subnet", "10.88.0.0/16", "taken"});
  slip_ok({"run", "-d", "--name", "holder", "--network", "taken", "-p", "8181:80", "busybox",
           "sleep", "300"});
  std::set<std::string> links = link_names();
  std::string leases_before = slip_ok({"network", "inspect", "taken", "bridge"});
  int containers_before = static_cast<int>(split_lines(slip_ok({"ps", "-aq"})).size());

  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"run", "--rm", "--network", "nosuch", "busybox", "true"}, 125, "network nosuch not found"},
      {{"run", "--rm", "--link", "nosuch:x", "busybox", "true"}, 125, "nosuch"},
      {{"run", "--rm", "--network", "taken", "--ip", "10.99.0.5", "busybox", "true"},
       125,
       "does not belong to any of this network's subnets"},
      {{"run", "--rm", "--ip", "172.17.0.9", "busybox", "true"}, 125, "user defined networks"},
      {{"network", "create", "--subnet", "10.88.1.0/24", "overlap"}, 125, "overlaps"},
      {{"network", "rm", "taken"}, 125, "has active endpoints"},
      {{"run", "--rm", "-p", "8181:80", "busybox", "true"}, 125, "port is already allocated"},
      {{"run", "--rm", "--add-host", "nocolon", "busybox", "true"}, 125, "add-host"},
  };
  for (const auto& c : cases) {
    CommandResult result = slip(c.args);
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    EXPECT_EQ(result.exit_code, c.exit_code) << joined << result.out << result.err;
    EXPECT_NE(result.err.find(c.message), std::string::npos) << joined << result.err;
    EXPECT_EQ(count_lines_containing(result.err, ""), 1) << joined << result.err;
  }
  EXPECT_EQ(link_names(), links);
  EXPECT_EQ(slip_ok({"network", "inspect", "taken", "bridge"}), leases_before);
  EXPECT_EQ(static_cast<int>(split_lines(slip_ok({"ps", "-aq"})).size()), containers_before);
  EXPECT_EQ(slip_ok({"network", "ls", "-q"}).find("overlap"), std::string::npos);
}

}  // namespace
}  // namespace slipway::testing
