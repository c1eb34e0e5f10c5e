// The build cache beyond this store: --cache-from hits put together from a cache's records,
// the lazy download of their layers, and --cache-to (registry, local, inline) after the build.
//
// Why lazy: a hit needs only the record (the config patch and the layer's descriptor) to make
// the step's image and so the next step's key; the layer's bytes matter only when something reads
// the image's files: a step that misses and runs on it, COPY --from or RUN --mount from= of the
// stage, USER/--chown name lookups, and the final image, which the store keeps complete so that
// run, save and push work afterwards without the cache. So a chain of hits downloads nothing
// until its end, and then only the final image's layers: an earlier stage whose result is only
// copied from by a step that hits is never downloaded, and neither are layers a later step
// replaced. (Pushing the final image straight from the cache's repository by cross-repository
// mounts would need no download at all, but would leave an image in the store without its
// files; slipway keeps the store's invariant instead.)
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "builder/build_internal.h"

namespace slipway::builder::detail {
using nlohmann::json;

void Build::open_cache_sources() {
  registry::Options options;
  options.quiet = true;
  for (const auto& text : options_.cache_from) {
    registry::CacheSpec spec;
    try {
      spec = registry::CacheSpec::parse(text, false);
    } catch (const Error& e) {
      throw BuildError(e.what());
    }
    try {
      shared_->cache_sources.push_back(registry::CacheSource::open(spec, options));
    } catch (const std::exception& e) {
      // Missing, unauthorized, not a cache, corrupt: the build goes on without it.
      std::cerr << "WARNING: cache " << text << " not used: " << e.what() << "\n" << std::flush;
    }
  }
  for (const auto& text : options_.cache_to) {
    try {
      registry::CacheSpec::parse(text, true);  // errors before the build, not after it
    } catch (const Error& e) {
      throw BuildError(e.what());
    }
  }
}

std::optional<store::Image> Build::remote_cache_lookup(const std::string& key) {
  for (const auto& source : shared_->cache_sources) {
    const registry::CacheRecord* record = source->find(key);
    if (record == nullptr) continue;
    try {
      const store::Image& parent = stage_->image;
      json config = parent.config.patch(record->config_patch);
      std::vector<store::Descriptor> layers = parent.layers;
      if (record->layer) {
        if (!source->has_blob(*record->layer)) continue;  // the blob is gone: a miss
        layers.push_back(*record->layer);
      }
      const json& diff_ids = config.at("rootfs").at("diff_ids");
      if (diff_ids.size() != layers.size()) continue;
      if (record->layer && diff_ids.back().get<std::string>() != record->diff_id) continue;
      store::Image image = store_.write_image(config, layers);
      if (record->layer) {
        std::lock_guard lock(shared_->cache_mutex);
        shared_->remote_layers.emplace(record->layer->digest, source.get());
      }
      return image;
    } catch (const std::exception&) {
      continue;  // a record that does not apply to this parent is no hit
    }
  }
  return std::nullopt;
}

void Build::ensure_layers(const store::Image& image) {
  struct Missing {
    size_t index;
    registry::CacheSource* source;
  };
  const std::vector<std::string> chains = image.chain_ids();
  const std::vector<std::string> diff_ids = image.diff_ids();
  auto missing_layers = [&] {
    std::vector<Missing> missing;
    std::lock_guard lock(shared_->cache_mutex);
    for (size_t i = 0; i < image.layers.size() && i < chains.size(); ++i) {
      if (store_.has_layer(chains[i]) && store_.has_blob(image.layers[i].digest)) continue;
      auto found = shared_->remote_layers.find(image.layers[i].digest);
      // A layer no cache gave is not ours to fetch: whoever needs it reports it missing.
      if (found != shared_->remote_layers.end()) missing.push_back({i, found->second});
    }
    return missing;
  };
  if (missing_layers().empty()) return;
  std::lock_guard fetching(shared_->fetch_mutex);
  std::vector<Missing> missing = missing_layers();  // another stage may have fetched them
  std::vector<std::exception_ptr> errors(missing.size());
  {
    // Each layer unpacks on its own (the parent's chain ID only names it), so they download
    // at once.
    std::vector<std::jthread> threads;
    for (size_t k = 0; k < missing.size(); ++k)
      threads.emplace_back([&, k] {
        const Missing& m = missing[k];
        try {
          m.source->fetch_layer(store_, image.layers[m.index],
                                m.index == 0 ? std::string() : chains[m.index - 1],
                                diff_ids[m.index]);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      });
  }
  for (size_t k = 0; k < missing.size(); ++k) {
    if (!errors[k]) continue;
    try {
      std::rethrow_exception(errors[k]);
    } catch (const std::exception& e) {
      throw Error("cannot fetch cached layer " + image.layers[missing[k].index].digest + " from " +
                  missing[k].source->spec().text + ": " + e.what());
    }
  }
  std::lock_guard lock(shared_->cache_mutex);
  shared_->layers_fetched += static_cast<int>(missing.size());
}

void Build::record_step(const std::string& key, const store::Image& parent, bool cached_here) {
  // The records serve --cache-to and the local entries of --cache-from hits; a build with
  // neither keeps none (each held two copies of a config: most of a cached build's heap).
  if (!options_.cache_to.empty() || !cached_here) {
    std::lock_guard lock(shared_->cache_mutex);
    shared_->step_records.push_back({key, stage_->last_cache_key, parent.config,
                                     parent.layers.size(), stage_->image, cached_here});
  }
  stage_->last_cache_key = key;
}

std::vector<registry::CacheRecord> Build::export_records(bool max, const std::string& last_key) {
  std::vector<StepRecord> steps;
  {
    std::lock_guard lock(shared_->cache_mutex);
    steps = shared_->step_records;
  }
  std::map<std::string, const StepRecord*> by_key;
  for (const auto& step : steps) by_key.emplace(step.key, &step);
  std::set<std::string> wanted;
  if (max) {
    for (const auto& step : steps) wanted.insert(step.key);
  } else {
    for (std::string key = last_key; !key.empty() && by_key.contains(key);
         key = by_key[key]->parent_key)
      if (!wanted.insert(key).second) break;
  }
  std::vector<registry::CacheRecord> records;
  std::set<std::string> done;
  for (const auto& step : steps) {
    if (!wanted.contains(step.key) || !done.insert(step.key).second) continue;
    registry::CacheRecord record;
    record.key = step.key;
    record.parent_key = step.parent_key;
    record.config_patch = json::diff(step.parent_config, step.image.config);
    if (step.image.layers.size() == step.parent_layers + 1) {
      record.layer = step.image.layers.back();
      record.diff_id = step.image.diff_ids().back();
    } else if (step.image.layers.size() != step.parent_layers) {
      continue;  // not one step on its parent: nothing another store could apply
    }
    records.push_back(std::move(record));
  }
  return records;
}

store::Image Build::finish_image(store::Image image, const std::string& last_key) {
  ensure_layers(image);
  json config = image.config;
  bool changed = false;
  if (!options_.labels.empty()) {
    json& labels = config["config"]["Labels"];
    if (!labels.is_object()) labels = json::object();
    for (const auto& [key, value] : options_.labels) labels[key] = value;
    changed = true;
  }
  for (const auto& text : options_.cache_to) {
    if (registry::CacheSpec::parse(text, true).kind != registry::CacheSpec::Kind::kInline) continue;
    // BuildKit's inline cache is min mode too: the final image's own steps.
    json list = json::array();
    for (const auto& record : export_records(false, last_key)) list.push_back(record.to_json());
    config[std::string(registry::kInlineCacheField)] = std::move(list);
    changed = true;
  }
  if (changed) image = store_.write_image(config, image.layers);
  // Steps hit in a --cache-from cache whose images are now complete here become local cache
  // entries: the next build on this store hits without the cache.
  std::vector<StepRecord> steps;
  {
    std::lock_guard lock(shared_->cache_mutex);
    for (const auto& step : shared_->step_records)
      if (!step.cached_here) steps.push_back(step);
  }
  for (const auto& step : steps) {
    bool complete = true;
    auto chains = step.image.chain_ids();
    for (size_t i = 0; i < step.image.layers.size() && complete; ++i)
      complete = i < chains.size() && store_.has_layer(chains[i]) &&
                 store_.has_blob(step.image.layers[i].digest);
    if (complete && !store_.cache_lookup(step.key)) store_.cache_record(step.key, step.image);
  }
  return image;
}

void Build::export_caches(const std::string& last_key) {
  registry::Options options;
  options.quiet = true;
  for (const auto& text : options_.cache_to) {
    registry::CacheSpec spec = registry::CacheSpec::parse(text, true);
    if (spec.kind == registry::CacheSpec::Kind::kInline) continue;
    registry::CacheExport cache;
    cache.records = export_records(spec.max, last_key);
    {
      std::lock_guard lock(shared_->cache_mutex);
      cache.content_digests = shared_->content_digests;
    }
    // A layer a --cache-from cache gave but nothing here needed is fetched now, when the
    // destination lacks it (exporting to the cache it came from, it does not).
    std::map<std::string, store::Image> image_of_layer;
    {
      std::lock_guard lock(shared_->cache_mutex);
      for (const auto& step : shared_->step_records)
        for (const auto& layer : step.image.layers)
          image_of_layer.emplace(layer.digest, step.image);
    }
    auto ensure_blob = [&](const store::Descriptor& blob) {
      auto found = image_of_layer.find(blob.digest);
      if (found == image_of_layer.end())
        throw Error("layer " + blob.digest + " is not in the store");
      ensure_layers(found->second);
    };
    try {
      registry::export_cache(store_, spec, cache, options, ensure_blob, out_);
    } catch (const std::exception& e) {
      throw BuildError("exporting the build cache to " + text + ": " + e.what());
    }
  }
}

}  // namespace slipway::builder::detail
