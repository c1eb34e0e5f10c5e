// slipway import, images, inspect, tag
#include <iostream>
#include <nlohmann/json.hpp>

#include "builder/builder.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "store/digest.h"

namespace slipway::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

int import_image(store::Store& store, const std::string& tarball, const std::string& name) {
  std::string full_name = store::normalize_image_name(name);
  if (!fs::is_regular_file(tarball)) throw Error("cannot import " + tarball + ": no such file");
  store::StoredLayer layer = store.import_layer(tarball, "");
  std::string now = builder::timestamp_now();
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"created", now},
                 {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id}}}},
                 {"history", {{{"created", now}, {"comment", "Imported from " + tarball}}}}};
  store::Image image = store.write_image(config, {layer.blob});
  store.tag(full_name, image);
  std::cout << image.id << "\n";
  return 0;
}

int list_images(const store::Store& store, bool quiet) {
  std::vector<std::vector<std::string>> rows;
  if (!quiet) rows.push_back({"REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"});
  for (const auto& named : store.list_images()) {
    std::string id = store::digest_hex(named.image.id).substr(0, 12);
    if (quiet) {
      rows.push_back({id});
      continue;
    }
    rows.push_back({named.repository, named.tag, id,
                    time_ago(named.image.config.value("created", std::string())),
                    human_size(static_cast<double>(store.image_size(named.image)))});
  }
  print_table(rows);
  return 0;
}

int inspect_images(const store::Store& store, const std::vector<std::string>& references) {
  json out = json::array();
  auto named_images = store.list_images();
  for (const auto& reference : references) {
    store::Image image = store.find_image(reference);
    json tags = json::array();
    for (const auto& named : named_images)
      if (named.image.id == image.id) tags.push_back(named.repository + ":" + named.tag);
    const json& config = image.config;
    out.push_back({{"Id", image.id},
                   {"RepoTags", tags},
                   {"RepoDigests", json::array()},
                   {"Created", config.value("created", "")},
                   {"Author", config.value("author", "")},
                   {"Config", config.value("config", json::object())},
                   {"Architecture", config.value("architecture", "")},
                   {"Os", config.value("os", "")},
                   {"Size", store.image_size(image)},
                   {"RootFS", {{"Type", "layers"}, {"Layers", image.diff_ids()}}}});
  }
  std::cout << out.dump(4) << "\n";
  return 0;
}

}  // namespace

void add_image_commands(CLI::App& app, CommandContext& context) {
  struct Arguments {
    std::string tarball, name;
    bool quiet = false;
    std::vector<std::string> references;
    std::string source, target;
  };
  auto args = std::make_shared<Arguments>();

  auto* import = app.add_subcommand("import", "Create an image from a root filesystem tarball");
  import->add_option("FILE", args->tarball, "Tarball (plain, gzip, zstd, bzip2 or xz)")->required();
  import->add_option("NAME", args->name, "NAME[:TAG]")->required();
  import->callback([&context, args] {
    context.action = [&context, args] {
      return import_image(context.store(), args->tarball, args->name);
};
}  // namespace slipway::cli
);

auto* images = app.add_subcommand("images", "List images");
images->add_flag("-q,--quiet", args->quiet, "Only show image IDs");
images->callback([&context, args] {
  context.action = [&context, args] { return list_images(context.store(), args->quiet); };
});

auto* inspect = app.add_subcommand("inspect", "Show the details of images as JSON");
inspect->add_option("IMAGE", args->references)->required();
inspect->callback([&context, args] {
  context.action = [&context, args] { return inspect_images(context.store(), args->references); };
});

auto* tag = app.add_subcommand("tag", "Give an image another name");
tag->add_option("SOURCE", args->source)->required();
tag->add_option("TARGET", args->target)->required();
tag->callback([&context, args] {
  context.action = [&context, args] {
    store::Store& store = context.store();
    store.tag(args->target, store.find_image(args->source));
    return 0;
  };
});
}

}  // namespace slipway::cli
