// Container records on disk: create, find, list, save, remove. See containers.h for the layout.
#include "runtime/containers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/random.h"

namespace slipway::runtime {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

bool is_container_id(std::string_view text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

// docker's rule for container names (daemon/names: RestrictedNamePattern).
bool valid_name(std::string_view name) {
  auto allowed_first = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  auto allowed = [&](char c) { return allowed_first(c) || c == '_' || c == '.' || c == '-'; };
  return name.size() >= 2 && allowed_first(name.front()) &&
         std::all_of(name.begin() + 1, name.end(), allowed);
}

// Holds an exclusive flock on `path` for the object's lifetime.
UniqueFd lock_file(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) throw_errno("cannot open lock " + path.string());
  while (::flock(fd.get(), LOCK_EX) < 0) {
    if (errno != EINTR) throw_errno("cannot lock " + path.string());
  }
  return fd;
}

json identity_json(const ProcessIdentity& identity) {
  return {{"Pid", identity.pid}, {"StartTime", identity.start_time}};
}

ProcessIdentity identity_from(const json& value) {
  ProcessIdentity identity;
  if (!value.is_object()) return identity;
  identity.pid = value.value("Pid", 0);
  identity.start_time = value.value("StartTime", uint64_t{0});
  return identity;
}

// Ports as docker inspect shows them: {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}. Host
// port 0 (random) is "" in the bindings, as docker writes it.
json ports_json(const std::vector<PortMapping>& mappings) {
  json out = json::object();
  for (const auto& m : mappings)
    out[m.container_key()].push_back(
        {{"HostIp", m.host_ip},
         {"HostPort", !m.host_port ? ""
                      : m.host_port_end > m.host_port
                          ? std::to_string(m.host_port) + "-" + std::to_string(m.host_port_end)
                          : std::to_string(m.host_port)}});
  return out;
}

std::vector<PortMapping> ports_from(const json& value) {
  std::vector<PortMapping> mappings;
  if (!value.is_object()) return mappings;
  for (const auto& [key, bindings] : value.items()) {
    PortMapping base = parse_port_mapping(key);
    for (const auto& binding : bindings) {
      PortMapping m = base;
      m.host_ip = binding.value("HostIp", "");
      std::string port = binding.value("HostPort", "");
      m.host_port = port.empty() ? 0 : std::atoi(port.c_str());
      if (size_t dash = port.find('-'); dash != std::string::npos)
        m.host_port_end = std::atoi(port.c_str() + dash + 1);
      mappings.push_back(m);
    }
  }
  return mappings;
}

json record_json_base(const ContainerRecord& record);
// Mounts as docker inspect shows them; tmpfs options go to HostConfig.Tmpfs, as docker keeps
// them.
json mounts_json(const std::vector<MountPoint>& mounts) {
  json out = json::array();
  for (const auto& m : mounts) {
    json entry = {{"Type", m.type}};
    if (m.type == "volume") entry["Name"] = m.name;
    entry["Source"] = m.source;
    entry["Destination"] = m.destination;
    if (m.type == "volume") entry["Driver"] = m.driver;
    entry["Mode"] = m.mode;
    entry["RW"] = m.rw;
    entry["Propagation"] = m.propagation;
    out.push_back(entry);
  }
  return out;
}

json tmpfs_json(const std::vector<MountPoint>& mounts) {
  json out = json::object();
  for (const auto& m : mounts)
    if (m.type == "tmpfs") out[m.destination] = m.tmpfs_options;
  return out;
}

std::vector<MountPoint> mounts_from(const json& value, const json& tmpfs) {
  std::vector<MountPoint> mounts;
  if (!value.is_array()) return mounts;
  for (const auto& entry : value) {
    MountPoint m;
    m.type = entry.value("Type", "volume");
    m.name = entry.value("Name", "");
    m.source = entry.value("Source", "");
    m.destination = entry.value("Destination", "");
    m.driver = entry.value("Driver", "");
    m.mode = entry.value("Mode", "");
    m.rw = entry.value("RW", true);
    m.propagation = entry.value("Propagation", "");
    if (m.type == "tmpfs" && tmpfs.is_object()) m.tmpfs_options = tmpfs.value(m.destination, "");
    mounts.push_back(m);
  }
  return mounts;
}

// The record in the shape of `docker inspect`'s, so that the file explains itself.
json record_json(const ContainerRecord& record) {
  json out = record_json_base(record);
  settings_to_json(record.settings, out);
  return out;
}

json record_json_base(const ContainerRecord& record) {
  std::vector<std::string> args(record.argv.begin() + (record.argv.empty() ? 0 : 1),
                                record.argv.end());
  json out = {
      {"Id", record.id},
      {"Name", "/" + record.name},
      {"Created", record.created},
      {"Path", record.argv.empty() ? "" : record.argv.front()},
      {"Args", args},
      {"Image", record.image_id},
      {"ImageManifest", record.image_manifest},
      {"RestartCount", record.restart_count},
      {"Config",
       {{"Image", record.image},
        {"Env", record.env},
        {"WorkingDir", record.working_dir},
        {"User", record.user},
        {"StopSignal", record.stop_signal},
        {"OpenStdin", record.interactive},
        {"Tty", record.tty}}},
      {"HostConfig",
       {{"NetworkMode", record.network},
        {"AutoRemove", record.auto_remove},
        {"PortBindings", ports_json(record.port_bindings)},
        {"ReadonlyRootfs", record.read_only},
        {"Tmpfs", tmpfs_json(record.mounts)}}},
      {"Mounts", mounts_json(record.mounts)},
      {"NetworkSettings", {{"Ports", ports_json(record.ports)}}},
      {"State",
       {{"Status", status_name(record.status)},
        {"Running", record.status == ContainerStatus::running},
        {"Pid", record.process.pid},
        {"Process", identity_json(record.process)},
        {"Supervisor", identity_json(record.supervisor)},
        {"ExitCode", record.exit_code},
        {"Error", record.error},
        {"StartedAt", record.started_at},
        {"FinishedAt", record.finished_at}}},
  };
  network_to_json(record, out);
  return out;
}

ContainerRecord record_from(const json& j) {
  ContainerRecord record;
  record.id = j.at("Id").get<std::string>();
  record.name = j.at("Name").get<std::string>();
  if (!record.name.empty() && record.name.front() == '/') record.name.erase(0, 1);
  record.created = j.value("Created", "");
  record.argv.push_back(j.value("Path", ""));
  for (const auto& arg : j.value("Args", std::vector<std::string>{})) record.argv.push_back(arg);
  record.image_id = j.value("Image", "");
  record.image_manifest = j.value("ImageManifest", "");
  record.restart_count = j.value("RestartCount", 0);
  const json config = j.value("Config", json::object());
  record.image = config.value("Image", "");
  record.env = config.value("Env", std::vector<std::string>{});
  record.working_dir = config.value("WorkingDir", "/");
  record.user = config.value("User", "");
  record.stop_signal = config.value("StopSignal", "");
  record.interactive = config.value("OpenStdin", false);
  record.tty = config.value("Tty", false);
  const json host = j.value("HostConfig", json::object());
  record.network = host.value("NetworkMode", "private");
  record.auto_remove = host.value("AutoRemove", false);
  record.port_bindings = ports_from(host.value("PortBindings", json::object()));
  record.read_only = host.value("ReadonlyRootfs", false);
  record.mounts =
      mounts_from(j.value("Mounts", json::array()), host.value("Tmpfs", json::object()));
  record.ports =
      ports_from(j.value("NetworkSettings", json::object()).value("Ports", json::object()));
  const json state = j.value("State", json::object());
  std::string status = state.value("Status", "created");
  record.status = status == "running"  ? ContainerStatus::running
                  : status == "exited" ? ContainerStatus::exited
                                       : ContainerStatus::created;
  record.process = identity_from(state.value("Process", json::object()));
  record.supervisor = identity_from(state.value("Supervisor", json::object()));
  record.exit_code = state.value("ExitCode", 0);
  record.error = state.value("Error", "");
  record.started_at = state.value("StartedAt", "");
  record.finished_at = state.value("FinishedAt", "");
  network_from_json(j, record);
  record.settings = settings_from_json(j);
  return record;
}

// Words for generated names: "<adjective>_<person>", as docker makes them.
constexpr const char* kAdjectives[] = {
    "agile",   "amber",  "bold",   "brave",    "bright", "calm",    "clever", "cosmic",
    "crisp",   "daring", "eager",  "fearless", "gentle", "glowing", "happy",  "humble",
    "jolly",   "keen",   "kind",   "lively",   "lucid",  "mellow",  "merry",  "nimble",
    "patient", "plucky", "proud",  "quiet",    "rapid",  "serene",  "sharp",  "steady",
    "sunny",   "swift",  "tender", "tidy",     "upbeat", "vivid",   "warm",   "witty"};
constexpr const char* kPeople[] = {
    "babbage", "banach",  "bohr",     "boole",   "cantor",     "curie",    "dijkstra",  "euler",
    "faraday", "fermat",  "feynman",  "fourier", "galois",     "gauss",    "hamming",   "hilbert",
    "hopper",  "huffman", "kepler",   "knuth",   "kolmogorov", "lamport",  "liskov",    "lovelace",
    "maxwell", "meitner", "noether",  "pascal",  "planck",     "poincare", "ramanujan", "riemann",
    "ritchie", "shannon", "thompson", "turing",  "volta",      "wiles",    "wirth",     "zuse"};

// "8000" or "8000-8002" as docker reads a port or a range of them (go-connections'
// ParsePortRange): {first, last}. `allow_zero` for a host port, where 0 asks for a random one.
// Throws Error("Invalid <what>: <text>").
std::pair<int, int> parse_port_range(std::string_view text, bool allow_zero, const char* what) {
  auto number = [](std::string_view digits) {
    bool ok = !digits.empty() && digits.size() <= 5 &&
              digits.find_first_not_of("0123456789") == std::string_view::npos;
    return ok ? std::atoi(std::string(digits).c_str()) : -1;
  };
  size_t dash = text.find('-');
  int first = number(text.substr(0, dash));
  int last = dash == std::string_view::npos ? first : number(text.substr(dash + 1));
  int lowest = allow_zero && dash == std::string_view::npos ? 0 : 1;
  if (first < lowest || last < lowest || first > 65535 || last > 65535 || last < first)
    throw Error(std::string("Invalid ") + what + ": " + std::string(text));
  return {first, last};
}

}  // namespace

std::string PortMapping::host_address() const {
  std::string ip = host_ip.empty() ? "0.0.0.0" : host_ip;
  if (ip.find(':') != std::string::npos) ip = "[" + ip + "]";
  std::string port = std::to_string(host_port);
  if (host_port_end > host_port) port += "-" + std::to_string(host_port_end);
  return ip + ":" + port;
}

std::vector<PortMapping> parse_port_mappings(std::string_view text) {
  std::string protocol = "tcp";
  std::string_view rest = text;
  if (size_t slash = rest.rfind('/'); slash != std::string_view::npos) {
    protocol = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    std::transform(protocol.begin(), protocol.end(), protocol.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (protocol == "sctp")
      throw Error("publishing sctp ports is not supported yet: " + std::string(text));
    if (protocol != "tcp" && protocol != "udp") throw Error("Invalid proto: " + protocol);
  }
  std::string host_ip;
  std::string_view host_ports, container_ports;
  // An IPv6 host address is written in brackets: [::1]:8080:80.
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      throw Error("Invalid ip address: " + std::string(text));
    host_ip = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 2);
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos) throw Error("Invalid port mapping: " + std::string(text));
    host_ports = rest.substr(0, colon);
    container_ports = rest.substr(colon + 1);
  } else {
    std::vector<std::string_view> parts;
    for (size_t start = 0;;) {
      size_t colon = rest.find(':', start);
      parts.push_back(rest.substr(start, colon == std::string_view::npos ? colon : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (parts.size() > 3) throw Error("Invalid port mapping: " + std::string(text));
    container_ports = parts.back();
    if (parts.size() >= 2) host_ports = parts[parts.size() - 2];
    if (parts.size() == 3) {
      host_ip = std::string(parts[0]);
      if (host_ip.empty()) throw Error("Invalid ip address: " + std::string(text));
    }
  }
  auto [first, last] = parse_port_range(container_ports, false, "containerPort");
  int host_first = 0, host_last = 0;
  if (!host_ports.empty())
    std::tie(host_first, host_last) = parse_port_range(host_ports, true, "hostPort");
  bool host_range = host_last > host_first;
  // As docker: ranges of the same size map port to port; one container port may take any free
  // port of a host range; any other pair of sizes is an error.
  if (!host_ports.empty() && last - first != host_last - host_first && last != first)
    throw Error("Invalid ranges specified for container and host Ports: " +
                std::string(container_ports) + " and " + std::string(host_ports));
  std::vector<PortMapping> mappings;
  for (int port = first; port <= last; ++port) {
    PortMapping mapping;
    mapping.host_ip = host_ip;
    mapping.protocol = protocol;
    mapping.container_port = port;
    if (first == last && host_range) {
      mapping.host_port = host_first;
      mapping.host_port_end = host_last;
    } else if (!host_ports.empty()) {
      mapping.host_port = host_first == 0 ? 0 : host_first + (port - first);
    }
    mappings.push_back(mapping);
  }
  return mappings;
}

PortMapping parse_port_mapping(std::string_view text) {
  std::vector<PortMapping> mappings = parse_port_mappings(text);
  if (mappings.size() != 1) throw Error("Invalid port: " + std::string(text));
  return mappings.front();
}

std::string_view status_name(ContainerStatus status) {
  switch (status) {
    case ContainerStatus::created:
      return "created";
    case ContainerStatus::running:
      return "running";
    case ContainerStatus::exited:
      return "exited";
  }
  return "unknown";
}

ProcessIdentity ProcessIdentity::of(pid_t pid) {
  if (pid <= 0) return {};
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may contain spaces and parentheses: fields resume after the last
  // ')'. After it come the state (field 3) and, 19 fields later, starttime (field 22).
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return {};
  std::istringstream fields(stat.substr(paren + 1));
  std::string state;
  fields >> state;
  if (state == "Z" || state == "X") return {};  // exited, not yet reaped: no longer running
  std::string field;
  for (int i = 4; i < 22 && fields >> field; ++i) {
  }
  uint64_t start_time = 0;
  if (!(fields >> start_time)) return {};
  return {pid, start_time};
}

bool ProcessIdentity::alive() const {
  if (pid <= 0) return false;
  ProcessIdentity current = ProcessIdentity::of(pid);
  return current.pid == pid && current.start_time == start_time;
}

ContainerStore::ContainerStore(store::Store& store)
    : store_(store), root_(store.root() / "containers") {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw Error("cannot create " + root_.string() + ": " + ec.message());
  finish_interrupted();
}

void ContainerStore::finish_interrupted() const {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    // ".new-<pid>-..." (a create) or ".removing-<pid>-<id>" (an rm) of a process that died.
    std::string name = entry.path().filename().string();
    bool created = name.rfind(".new-", 0) == 0, removed = name.rfind(".removing-", 0) == 0;
    if (!created && !removed) continue;
    size_t pid_start = name.find('-') + 1, pid_end = name.find('-', pid_start);
    if (pid_end == std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.substr(pid_start, pid_end - pid_start).c_str()));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    try {
      // Its hold goes with it: the ID is in the name, or in a half-made record's config.json.
      std::string id = removed ? name.substr(pid_end + 1) : "";
      if (created) {
        try {
          id = json::parse(read_file(entry.path() / "config.json")).value("Id", "");
        } catch (const std::exception&) {
          // Killed before the record was written, so before the hold too.
        }
      }
      remove_tree(entry.path());
      if (is_container_id(id) && !fs::exists(dir(id))) store_.release_image("container-" + id);
    } catch (const Error&) {
      // Another process is finishing it.
    }
  }
}

ContainerStore::Lock::Lock(const ContainerStore& containers, std::string_view id) {
  fs::path dir = containers.dir(id);
  if (!is_container_id(id) || !fs::is_directory(dir)) throw NoSuchContainer(id);
  fd_ = lock_file(dir / "lock");
}

ContainerRecord ContainerStore::load(std::string_view id) const {
  if (!is_container_id(id)) throw NoSuchContainer(id);
  fs::path file = dir(id) / "config.json";
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error&) {
    // Gone, or going: `rm` (and --rm) renames the directory away in one step, also between a
    // look at the file and its read (`attach` of an exiting --rm container saw that).
    if (!fs::exists(file)) throw NoSuchContainer(id);
    throw;
  }
  try {
    return record_from(json::parse(text));
  } catch (const json::exception& e) {
    throw Error("container " + std::string(id) + " has a damaged record " + file.string() + ": " +
                e.what());
  }
}

void ContainerStore::save(const ContainerRecord& record) const {
  write_file_atomic(dir(record.id) / "config.json", record_json(record).dump(2), false);
}

std::vector<ContainerRecord> ContainerStore::load_all() const {
  std::vector<ContainerRecord> records;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    std::string name = entry.path().filename().string();
    if (!is_container_id(name)) continue;  // "lock", and directories being created or removed
    try {
      records.push_back(load(name));
    } catch (const Error&) {
      // Removed meanwhile, or damaged: neither is listed.
    }
  }
  return records;
}

void ContainerStore::refresh(ContainerRecord& record) const {
  if (record.status != ContainerStatus::running || record.process.alive()) return;
  // The container is gone. A live supervisor is about to record how it ended: give it time.
  for (int i = 0; i < 250 && record.supervisor.alive(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    try {
      record = load(record.id);
    } catch (const NoSuchContainer&) {
      return;  // --rm: the supervisor removed it
    }
    if (record.status != ContainerStatus::running || record.process.alive()) return;
  }
  try {
    Lock lock(*this, record.id);
    ContainerRecord current = load(record.id);
    if (current.status == ContainerStatus::running && current.started_at == record.started_at &&
        !current.process.alive() && !current.supervisor.alive()) {
      current.status = ContainerStatus::exited;
      current.exit_code = 255;
      current.error = "the container's supervisor died";
      current.finished_at = rfc3339_now();
      current.process = current.supervisor = {};
      current.ports.clear();
      current.endpoints.clear();
      save(current);
    }
    record = current;
  } catch (const NoSuchContainer&) {
    record.status = ContainerStatus::exited;
  }
}

ContainerRecord ContainerStore::find(std::string_view reference) const {
  std::string wanted(reference);
  if (!wanted.empty() && wanted.front() == '/') wanted.erase(0, 1);  // docker's "/name"
  std::vector<ContainerRecord> records = load_all();
  std::optional<ContainerRecord> found;
  for (const auto& record : records)
    if (record.id == wanted) found = record;
  for (const auto& record : records)
    if (!found && record.name == wanted) found = record;
  if (!found && !wanted.empty()) {
    std::vector<const ContainerRecord*> matches;
    for (const auto& record : records)
      if (record.id.compare(0, wanted.size(), wanted) == 0) matches.push_back(&record);
    if (matches.size() > 1)
      throw Error("Multiple IDs found with provided prefix: " + std::string(reference));
    if (matches.size() == 1) found = *matches.front();
  }
  if (!found) throw NoSuchContainer(reference);
  refresh(*found);
  return *found;
}

uint64_t ContainerStore::writable_size(std::string_view id) const {
  uint64_t size = 0;
  std::set<std::pair<dev_t, ino_t>> counted;
  std::error_code ec;
  fs::path upper = dir(id) / "upper";
  for (fs::recursive_directory_iterator
           it(upper, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) < 0 || S_ISDIR(st.st_mode) || st.st_size == 0) continue;
    if (counted.insert({st.st_dev, st.st_ino}).second) size += static_cast<uint64_t>(st.st_size);
  }
  return size;
}

std::vector<ContainerRecord> ContainerStore::list() const {
  std::vector<ContainerRecord> records = load_all();
  for (auto& record : records) refresh(record);
  std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
    return a.created != b.created ? a.created > b.created : a.id < b.id;
  });
  return records;
}

std::string ContainerStore::generate_name(const std::vector<ContainerRecord>& existing) const {
  auto taken = [&](const std::string& name) {
    return std::any_of(existing.begin(), existing.end(),
                       [&](const auto& record) { return record.name == name; });
  };
  std::string random = random_hex(8);
  uint64_t seed = std::stoull(random, nullptr, 16);
  constexpr size_t adjectives = std::size(kAdjectives), people = std::size(kPeople);
  for (size_t attempt = 0; attempt < adjectives * people; ++attempt) {
    uint64_t pick = seed + attempt;
    std::string name =
        std::string(kAdjectives[pick % adjectives]) + "_" + kPeople[(pick / adjectives) % people];
    if (!taken(name)) return name;
  }
  // Every pair is taken: a number makes it unique, as docker's retry does.
  for (int suffix = 1;; ++suffix) {
    std::string name = std::string(kAdjectives[seed % adjectives]) + "_" +
                       kPeople[(seed / adjectives) % people] + std::to_string(suffix);
    if (!taken(name)) return name;
  }
}

ContainerRecord ContainerStore::create(const store::Image& image, std::string_view image_reference,
                                       const ContainerOptions& options) {
  std::string name = options.name;
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  if (!options.name.empty() && !valid_name(name))
    throw Error("Invalid container name (" + options.name +
                "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");

  ContainerRecord record;
  record.image = std::string(image_reference);
  record.image_id = image.id;
  record.image_manifest = image.manifest_digest;
  const json config = image.config.value("config", json::object());
  record.settings = options.settings;
  add_image_settings(config, record.settings);
  record.argv = options.settings.entrypoint
                    ? *options.settings.entrypoint
                    : config.value("Entrypoint", std::vector<std::string>{});
  // As docker: --entrypoint drops the image's Cmd too.
  std::vector<std::string> command = !options.command.empty() || options.settings.entrypoint
                                         ? options.command
                                         : config.value("Cmd", std::vector<std::string>{});
  record.argv.insert(record.argv.end(), command.begin(), command.end());
  if (record.argv.empty()) throw Error("no command specified: the image has no CMD or ENTRYPOINT");
  record.env = config.value("Env", std::vector<std::string>{});
  record.env.insert(record.env.end(), options.env.begin(), options.env.end());
  if (std::string image_workdir = config.value("WorkingDir", ""); !image_workdir.empty())
    record.working_dir = image_workdir;
  if (!options.working_dir.empty()) record.working_dir = options.working_dir;
  record.user = options.user.empty() ? config.value("User", "") : options.user;
  record.stop_signal = config.value("StopSignal", "");
  if (!options.settings.stop_signal.empty()) record.stop_signal = options.settings.stop_signal;
  record.network_options = options.network_options;
  record.network = check_network_options(*this, options.network, record.network_options);
  record.interactive = options.interactive;
  record.tty = options.tty;
  record.auto_remove = options.auto_remove;
  record.port_bindings = options.ports;
  if (options.publish_all) {
    // -P: every EXPOSEd TCP and UDP port on a random host port (SCTP is not forwarded).
    const json exposed_ports = config.value("ExposedPorts", json::object());
    for (const auto& [key, ignored] : exposed_ports.items()) {
      if (key.find("/sctp") != std::string::npos) continue;
      PortMapping exposed = parse_port_mapping(key);
      bool asked = std::any_of(
          record.port_bindings.begin(), record.port_bindings.end(),
          [&](const PortMapping& m) { return m.container_key() == exposed.container_key(); });
      if (!asked) record.port_bindings.push_back(exposed);
    }
  }
  record.id = random_hex(32);
  record.created = rfc3339_now();

  UniqueFd lock = lock_file(root_ / "lock");
  std::vector<ContainerRecord> existing = load_all();
  if (name.empty()) {
    name = generate_name(existing);
  } else {
    for (const auto& other : existing)
      if (other.name == name)
        throw Error("Conflict. The container name \"/" + name +
                    "\" is already in use by container \"" + other.id +
                    "\". You have to remove (or rename) that container to be able to reuse "
                    "that name.");
  }
  record.name = name;
  record.read_only = options.read_only;
  // Last before the directory: volumes made here are removed again when it fails.
  record.mounts = prepare_mounts(*this, image, options.mounts, options.volumes_from);

  // Built under a name load_all skips, then renamed: a crash never leaves half a record.
  TempDir staged(root_, ".new-" + std::to_string(::getpid()) + "-");
  for (const char* sub : {"upper", "work", "rootfs"}) fs::create_directory(staged.path() / sub);
  write_file_atomic(staged.path() / "config.json", record_json(record).dump(2), false);
  // A --rm container's record is garbage after a crash (it was to go when the container
  // ended), so its hold need not survive one: two fsyncs less, 1-4 ms of a `run --rm`.
  store_.hold_image("container-" + record.id, image, /*durable=*/!record.auto_remove);
  if (::rename(staged.path().c_str(), dir(record.id).c_str()) < 0) {
    int err = errno;
    store_.release_image("container-" + record.id);
    throw SystemError("cannot create container directory " + dir(record.id).string(), err);
  }
  staged.keep();
  return record;
}

void ContainerStore::remove(const ContainerRecord& record, bool anonymous_volumes) const {
  fs::path doomed = root_ / (".removing-" + std::to_string(::getpid()) + "-" + record.id);
  {
    UniqueFd lock = lock_file(root_ / "lock");
    if (::rename(dir(record.id).c_str(), doomed.c_str()) < 0) {
      if (errno == ENOENT) throw NoSuchContainer(record.id);
      throw_errno("cannot remove container " + record.id);
    }
  }
  remove_tree(doomed);
  if (anonymous_volumes && !record.mounts.empty()) {
    std::vector<std::vector<MountPoint>> others;
    for (const auto& other : load_all()) others.push_back(other.mounts);
    remove_anonymous_volumes(store_, record.mounts, others);
  }
  // Last, so that a failure above never leaves a container whose image may be collected.
  store_.release_image("container-" + record.id);
}

ContainerSpec container_spec(const ContainerStore& containers, const ContainerRecord& record) {
  store::Store& store = containers.image_store();
  store::Image image = store.load_image(record.image_manifest);
  fs::path dir = containers.dir(record.id);
  ContainerSpec spec;
  spec.layers_base = store.root();
  spec.lower_dirs = store.overlay_lowers(image);
  spec.upper_dir = dir / "upper";
  spec.work_dir = dir / "work";
  spec.rootfs = dir / "rootfs";
  spec.argv = record.argv;
  spec.env = record.env;
  spec.working_dir = record.working_dir;
  spec.user = record.user;
  spec.hostname = record.id.substr(0, 12);
  apply_settings(record.settings, record.id, spec);
  spec.isolate_network = record.network != "host";  // container_network.cpp may join one instead
  spec.tty = record.tty;                            // the runtime adds TERM=xterm then
  spec.mounts = container_mounts(store, record.mounts);
  spec.read_only_rootfs = record.read_only;
  return spec;
}

}  // namespace slipway::runtime
