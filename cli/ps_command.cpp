// slipway ps: docker's --format fields, --filter keys and table.
#include <algorithm>
#include <iostream>

#include "cli/filters.h"
#include "cli/format.h"
#include "cli/ps.h"
#include "common/go_quote.h"
#include "store/digest.h"

namespace slipway::cli {
namespace {
using gotemplate::Value;
using runtime::ContainerRecord;
using runtime::ContainerStatus;

const char* kDefaultTable =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

// docker's ContainerContext headers.
Value ps_headers() {
  return Value{{"Command", "COMMAND"},
               {"CreatedAt", "CREATED AT"},
               {"ID", "CONTAINER ID"},
               {"Image", "IMAGE"},
               {"Label", "LABEL"},
               {"Labels", "LABELS"},
               {"LocalVolumes", "LOCAL VOLUMES"},
               {"Mounts", "MOUNTS"},
               {"Names", "NAMES"},
               {"Networks", "NETWORKS"},
               {"Platform", "PLATFORM"},
               {"Ports", "PORTS"},
               {"RunningFor", "CREATED"},
               {"Size", "SIZE"},
               {"State", "STATE"},
               {"Status", "STATUS"}};
}

const std::set<std::string> kPsFilterKeys = {
    "ancestor", "before", "expose", "exited",  "health",  "id",    "isolation", "is-task",
    "label",    "label!", "name",   "network", "publish", "since", "status",    "volume"};

// "80", "80/udp", "8000-8002/tcp" as docker's publish/expose filters take them: a port range and
// a protocol ("" for any).
struct PortFilter {
  int first = 0, last = 0;
  std::string protocol;
};

PortFilter parse_port_filter(const std::string& key, const std::string& value) {
  PortFilter filter;
  std::string ports = value;
  size_t slash = value.find('/');
  if (slash != std::string::npos) {
    ports = value.substr(0, slash);
    filter.protocol = value.substr(slash + 1);
  }
  try {
    size_t dash = ports.find('-');
    size_t used = 0;
    filter.first = std::stoi(ports.substr(0, dash), &used);
    filter.last = dash == std::string::npos ? filter.first : std::stoi(ports.substr(dash + 1));
    if (used != ports.substr(0, dash).size()) throw std::invalid_argument(ports);
  } catch (const std::exception&) {
    throw Error("invalid filter '" + key + "=" + value + "'");
  }
  return filter;
}

bool port_matches(const std::vector<PortFilter>& filters, int port, const std::string& protocol) {
  for (const auto& f : filters)
    if (port >= f.first && port <= f.last && (f.protocol.empty() || f.protocol == protocol))
      return true;
  return false;
}

// The ID of a container given by name or ID to before/since.
const ContainerRecord& find_row(const std::vector<PsRow>& rows, const std::string& reference) {
  for (const auto& row : rows)
    if (row.record.name == reference || row.record.id == reference) return row.record;
  for (const auto& row : rows)
    if (reference.size() >= 1 && row.record.id.rfind(reference, 0) == 0) return row.record;
  throw runtime::NoSuchContainer(reference);
}

// Whether `record`'s image is `ancestor` or built on it (its layers start with the ancestor's).
bool descends_from(store::Store& store, const ContainerRecord& record,
                   const std::vector<store::Image>& ancestors) {
  std::optional<store::Image> image;
  for (const auto& ancestor : ancestors) {
    if (record.image_id == ancestor.id) return true;
    if (!image) {
      try {
        image = store.load_image(record.image_manifest);
      } catch (const Error&) {
        return false;
      }
    }
    auto mine = image->chain_ids(), theirs = ancestor.chain_ids();
    if (!theirs.empty() && theirs.size() <= mine.size() &&
        std::equal(theirs.begin(), theirs.end(), mine.begin()))
      return true;
  }
  return false;
}

std::string join_labels(const nlohmann::json& labels) {
  std::string text;
  if (!labels.is_object()) return text;
  for (const auto& [key, value] : labels.items())
    text += (text.empty() ? "" : ",") + key + "=" +
            (value.is_string() ? value.get<std::string>() : value.dump());
  return text;
}

}  // namespace

nlohmann::json container_labels(store::Store& store, const ContainerRecord& record) {
  try {
    store::Image image = store.load_image(record.image_manifest);
    return image.config.value("config", nlohmann::json::object()).value("Labels", nlohmann::json());
  } catch (const Error&) {
    return nullptr;
  }
}

int print_containers(store::Store& store, const PsOptions& options,
                     const std::vector<PsRow>& rows) {
  Filters filters(options.filters, kPsFilterKeys);
  // Values checked before anything is listed, in docker's words.
  static const std::set<std::string> kStates = {"created", "restarting", "running", "removing",
                                                "paused",  "exited",     "dead"};
  for (const auto& value : filters.values("status"))
    if (!kStates.count(value)) throw Error("invalid filter 'status=" + value + "'");
  static const std::set<std::string> kHealth = {"starting", "healthy", "unhealthy", "none"};
  for (const auto& value : filters.values("health"))
    if (!kHealth.count(value)) throw Error("invalid filter 'health=" + value + "'");
  std::vector<int> exit_codes;
  for (const auto& value : filters.values("exited")) {
    try {
      size_t used = 0;
      exit_codes.push_back(std::stoi(value, &used));
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      throw Error("invalid filter 'exited=" + value + "'");
    }
  }
  std::vector<PortFilter> publish, expose;
  for (const auto& value : filters.values("publish"))
    publish.push_back(parse_port_filter("publish", value));
  for (const auto& value : filters.values("expose"))
    expose.push_back(parse_port_filter("expose", value));
  std::vector<store::Image> ancestors;
  for (const auto& value : filters.values("ancestor"))
    if (auto image = store.try_find_image(value)) ancestors.push_back(*image);
  std::string before_created, since_created;
  for (const auto& value : filters.values("before")) before_created = find_row(rows, value).created;
  for (const auto& value : filters.values("since")) since_created = find_row(rows, value).created;

  // docker shows stopped containers too when asked by status or exit code, or for -n/-l.
  bool all = options.all || filters.has("status") || filters.has("exited") || options.latest ||
             options.last > 0;
  int limit = options.latest ? 1 : options.last;

  std::vector<Value> shown;
  std::map<std::string, nlohmann::json> labels_by_id;
  for (const auto& row : rows) {
    const ContainerRecord& record = row.record;
    if (!all && record.status != ContainerStatus::running) continue;
    if (!filters.match("id", record.id)) continue;
    if (!filters.match("name", "/" + record.name)) continue;
    if (!filters.exact("status", std::string(runtime::status_name(record.status)))) continue;
    if (!exit_codes.empty() &&
        (record.status != ContainerStatus::exited ||
         std::find(exit_codes.begin(), exit_codes.end(), record.exit_code) == exit_codes.end()))
      continue;
    nlohmann::json labels = container_labels(store, record);
    if (!filters.labels_match(labels)) continue;
    if (!ancestors.empty() || filters.has("ancestor"))
      if (!descends_from(store, record, ancestors)) continue;
    if (!before_created.empty() && !(parse_rfc3339(record.created) < parse_rfc3339(before_created)))
      continue;
    if (!since_created.empty() && !(parse_rfc3339(since_created) < parse_rfc3339(record.created)))
      continue;
    // Volumes and health are not in container records yet: no container has a volume, every
    // container's health is "none".
    if (filters.has("volume")) continue;
    if (filters.has("health") && !filters.exact("health", "none")) continue;
    if (filters.has("network") && !filters.exact("network", record.network)) continue;
    if (!publish.empty()) {
      bool any = false;
      for (const auto& port : record.ports)
        any = any || port_matches(publish, port.host_port, port.protocol);
      if (!any) continue;
    }
    if (!expose.empty()) {
      bool any = false;
      for (const auto& port : record.port_bindings)
        any = any || port_matches(expose, port.container_port, port.protocol);
      if (!any) continue;
    }
    if (limit > 0 && static_cast<int>(shown.size()) >= limit) break;

    std::string command;
    for (const auto& arg : record.argv) command += (command.empty() ? "" : " ") + arg;
    std::string size = "0B";
    if (options.size) {
      runtime::ContainerStore containers(store);
      size = human_size(static_cast<double>(containers.writable_size(record.id)));
      if (auto image = store.try_find_image(record.image_id))
        size += " (virtual " + human_size(static_cast<double>(store.image_size(*image))) + ")";
    }
    // Keys in docker's JSON order (sorted), so that --format json prints them as docker does.
    Value value = {{"Command", go_quote(options.no_trunc ? command : ellipsis(command, 20))},
                   {"CreatedAt", go_local_time(record.created)},
                   {"ID", options.no_trunc ? record.id : record.id.substr(0, 12)},
                   {"Image", row.image},
                   {"Labels", join_labels(labels)},
                   {"LocalVolumes", "0"},
                   {"Mounts", ""},
                   {"Names", record.name},
                   {"Networks", record.network},
                   {"Ports", row.ports},
                   {"RunningFor", time_ago(record.created)},
                   {"Size", size},
                   {"State", std::string(runtime::status_name(record.status))},
                   {"Status", row.status}};
    labels_by_id[value["ID"].get<std::string>()] = labels;  // for .Label
    shown.push_back(std::move(value));
  }

  std::string format = options.format;
  if (options.quiet) format = "{{.ID}}";
  if (format.empty() || format == "table")
    format = options.size ? std::string(kDefaultTable) + "\t{{.Size}}" : kDefaultTable;
  try {
    if (format != "json") gotemplate::Template::parse(gotemplate::expand_format(format));
  } catch (const gotemplate::TemplateError& e) {
    throw Error(std::string("failed to parse template: ") + e.what());
  }
  gotemplate::ExecuteOptions exec;
  exec.type_name = "*formatter.ContainerContext";
  exec.methods["Label"] = [&labels_by_id](const Value& row,
                                          const std::vector<Value>& args) -> Value {
    if (args.size() != 1 || !args[0].is_string())
      throw Error("wrong number of args for Label: want 1 got " + std::to_string(args.size()));
    const nlohmann::json& labels = labels_by_id[row.value("ID", "")];
    std::string key = args[0].get<std::string>();
    if (!labels.is_object() || !labels.contains(key) || !labels[key].is_string()) return "";
    return labels[key].get<std::string>();
  };
  print_formatted(format, kDefaultTable, ps_headers(), shown, exec);
  return 0;
}

void add_ps_flags(CLI::App* ps, PsOptions& options) {
  ps->add_flag("-a,--all", options.all, "Show all containers (default shows just running)");
  ps->add_option("-f,--filter", options.filters, "Filter output based on conditions provided")
      ->allow_extra_args(false);
  ps->add_option("--format", options.format,
                 "Format output using a custom template:\n"
                 "'table':            Print output in table format with column headers (default)\n"
                 "'table TEMPLATE':   Print output in table format using the given Go template\n"
                 "'json':             Print in JSON format\n"
                 "'TEMPLATE':         Print output using the given Go template");
  ps->add_option("-n,--last", options.last, "Show n last created containers (includes all states)");
  ps->add_flag("-l,--latest", options.latest,
               "Show the latest created container (includes all states)");
  ps->add_flag("--no-trunc", options.no_trunc, "Don't truncate output");
  ps->add_flag("-q,--quiet", options.quiet, "Only display container IDs");
  ps->add_flag("-s,--size", options.size, "Display total file sizes");
}

}  // namespace slipway::cli
