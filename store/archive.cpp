// save and load: images to and from docker-archive tars (manifest.json, repositories, config
// and uncompressed layer tars, as `docker save` writes and `docker load` / skopeo read) and OCI
// image layout archives (oci-layout, index.json, blobs/sha256/...).
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>

#include "common/error.h"
#include "store/digest.h"
#include "store/layer_archive.h"
#include "store/store.h"

namespace slipway::store {
namespace fs = std::filesystem;
using namespace layer_detail;
using nlohmann::json;

namespace {

constexpr size_t kCopyBlock = 1 << 20;
constexpr const char* kContainerdNameAnnotation = "io.containerd.image.name";

// A tar being written to a file, one regular-file entry at a time.
class TarWriter {
 public:
  TarWriter(const fs::path& path, std::string context)
      : archive_(archive_write_new()), context_(std::move(context)) {
    if (!archive_ || archive_write_set_format_pax_restricted(archive_.get()) != ARCHIVE_OK ||
        archive_write_open_filename(archive_.get(), path.c_str()) != ARCHIVE_OK)
      fail("cannot create " + path.string());
  }

  void add(const std::string& name, std::string_view bytes) {
    header(name, bytes.size());
    data(bytes.data(), bytes.size());
  }

  // Adds `size` bytes read from `source`; throws if the source ends early or runs over.
  void add(const std::string& name, uint64_t size, ByteSource& source, Sha256* hash = nullptr) {
    header(name, size);
    std::string buffer(kCopyBlock, '\0');
    uint64_t written = 0;
    for (;;) {
      size_t n = source.read(buffer.data(), buffer.size());
      if (n == 0) break;
      if (written + n > size) throw Error(context_ + ": " + name + " is longer than recorded");
      if (hash) hash->update(buffer.data(), n);
      data(buffer.data(), n);
      written += n;
    }
    if (written != size) throw Error(context_ + ": " + name + " is shorter than recorded");
  }

  void close() {
    if (archive_write_close(archive_.get()) != ARCHIVE_OK) fail("cannot finish the archive");
  }

 private:
  void header(const std::string& name, uint64_t size) {
    ArchiveEntryPtr entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(size));
    if (archive_write_header(archive_.get(), entry.get()) != ARCHIVE_OK)
      fail("cannot write " + name);
  }
  void data(const void* bytes, size_t size) {
    if (size > 0 && archive_write_data(archive_.get(), bytes, size) < 0)
      fail("cannot write archive data");
  }
  [[noreturn]] void fail(const std::string& what) {
    throw Error(context_ + ": " + what + ": " + archive_error_text(archive_.get()));
  }

  ArchiveWritePtr archive_;
  std::string context_;
};

// A ByteSource over a whole file.
class FileSource : public ByteSource {
 public:
  explicit FileSource(const fs::path& path) : fd_(open_or_throw(path, O_RDONLY)), path_(path) {}
  size_t read(void* buffer, size_t size) override {
    for (;;) {
      ssize_t n = ::read(fd_.get(), buffer, size);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) throw_errno("cannot read " + path_.string());
    }
  }

 private:
  UniqueFd fd_;
  fs::path path_;
};

uint64_t count_bytes(ByteSource& source) {
  std::string buffer(kCopyBlock, '\0');
  uint64_t total = 0;
  while (size_t n = source.read(buffer.data(), buffer.size())) total += n;
  return total;
}

// The files of an archive being loaded, unpacked into a scratch dir by their (checked) names.
class UnpackedArchive {
 public:
  UnpackedArchive(const fs::path& input, const fs::path& scratch) : input_(input) {
    ArchiveReadPtr archive(archive_read_new());
    archive_read_support_filter_all(archive.get());
    archive_read_support_format_tar(archive.get());
    if (archive_read_open_filename(archive.get(), input.c_str(), kCopyBlock) != ARCHIVE_OK)
      throw Error(context() + ": not a readable tar: " + archive_error_text(archive.get()));
    std::map<std::string, std::string> links;  // name -> target name
    archive_entry* entry = nullptr;
    int n = 0;
    for (;;) {
      int status = archive_read_next_header(archive.get(), &entry);
      if (status == ARCHIVE_EOF) break;
      if (status != ARCHIVE_OK && status != ARCHIVE_WARN)
        throw Error(context() + ": not a readable tar: " + archive_error_text(archive.get()));
      const char* raw = archive_entry_pathname(entry);
      std::string name = clean_name(raw ? raw : "", "");
      if (name.empty()) continue;  // "./"
      auto type = archive_entry_filetype(entry);
      if (const char* hardlink = archive_entry_hardlink(entry)) {
        links[name] = clean_name(hardlink, "");
      } else if (type == AE_IFLNK) {
        const char* target = archive_entry_symlink(entry);
        links[name] = clean_name(target ? target : "", fs::path(name).parent_path().string());
      } else if (type == AE_IFREG) {
        fs::path file = scratch / std::to_string(n++);
        UniqueFd fd = open_or_throw(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (archive_read_data_into_fd(archive.get(), fd.get()) != ARCHIVE_OK)
          throw Error(context() + ": cannot read " + name + ": " +
                      archive_error_text(archive.get()));
        files_[name] = file;
      }
    }
    for (const auto& [name, target] : links) {
      std::string resolved = target;
      for (int hops = 0; hops < 8 && !files_.count(resolved) && links.count(resolved); ++hops)
        resolved = links.at(resolved);
      if (auto it = files_.find(resolved); it != files_.end()) files_.emplace(name, it->second);
    }
  }

  bool has(const std::string& name) const { return files_.count(clean_name(name, "")) > 0; }
  fs::path path(const std::string& name) const {
    auto it = files_.find(clean_name(name, ""));
    if (it == files_.end()) throw Error(context() + ": it has no file " + name);
    return it->second;
  }
  std::string read(const std::string& name) const { return read_file(path(name)); }
  json read_json(const std::string& name) const {
    try {
      return json::parse(read(name));
    } catch (const json::exception& e) {
      throw Error(context() + ": " + name + " is not valid JSON: " + e.what());
    }
  }
  std::string context() const { return "cannot load " + input_.string(); }

 private:
  // "./a/../b" relative to `base` -> "b"; names that leave the archive are refused.
  std::string clean_name(const std::string& raw, const std::string& base) const {
    if (!raw.empty() && raw.front() == '/') {
      if (base.empty()) throw Error(context() + ": entry \"" + raw + "\" has an absolute name");
      return "";  // an absolute symlink target never names a file of the archive
    }
    std::vector<std::string> parts;
    std::string joined = base.empty() ? raw : base + "/" + raw;
    size_t start = 0;
    while (start <= joined.size()) {
      size_t end = joined.find('/', start);
      if (end == std::string::npos) end = joined.size();
      std::string part = joined.substr(start, end - start);
      start = end + 1;
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (parts.empty()) throw Error(context() + ": entry \"" + raw + "\" leaves the archive");
        parts.pop_back();
      } else {
        parts.push_back(part);
      }
    }
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : "/") + part;
    return out;
  }

  fs::path input_;
  std::map<std::string, fs::path> files_;
};

}  // namespace

void Store::save_archive(const std::vector<std::string>& references, const fs::path& output,
                         ArchiveFormat format) {
  if (references.empty()) throw Error("save needs at least one image");
  // Images in the order given, each once, with the names given for it.
  std::vector<std::pair<Image, std::vector<std::string>>> images;
  for (const auto& reference : references) {
    Image image = find_image(reference);
    std::string name;
    try {
      name = normalize_image_name(reference);
      bool is_name = false;
      for (const auto& named : list_images())
        is_name |= named.repository + ":" + named.tag == name && named.image.id == image.id;
      if (!is_name) name.clear();
    } catch (const Error&) {
    }
    auto same = std::find_if(images.begin(), images.end(), [&](const auto& item) {
      return item.first.manifest_digest == image.manifest_digest;
    });
    if (same == images.end()) {
      images.push_back({image, {}});
      same = images.end() - 1;
    }
    if (!name.empty() &&
        std::find(same->second.begin(), same->second.end(), name) == same->second.end())
      same->second.push_back(name);
  }

  fs::path target = fs::absolute(output);
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(::getpid());
  std::string context = "cannot save to " + output.string();
  try {
    TarWriter tar(tmp, context);
    if (format == ArchiveFormat::kDocker) {
      json manifest = json::array();
      json repositories = json::object();
      std::set<std::string> written;
      for (const auto& [image, names] : images) {
        std::string config_name = digest_hex(image.id) + ".json";
        if (written.insert(config_name).second) tar.add(config_name, read_blob(image.id));
        json layers = json::array();
        auto diff_ids = image.diff_ids();
        auto chains = image.chain_ids();
        if (diff_ids.size() != image.layers.size())
          throw Error(context + ": image " + image.id + " lists " +
                      std::to_string(image.layers.size()) + " layers but its config " +
                      std::to_string(diff_ids.size()) + " diff IDs");
        for (size_t i = 0; i < diff_ids.size(); ++i) {
          std::string layer_name = digest_hex(diff_ids[i]) + ".tar";
          layers.push_back(layer_name);
          if (!written.insert(layer_name).second) continue;
          uint64_t size = layer_size(chains[i]);
          if (size == 0) {
            auto counter = open_tar_file(blob_path(image.layers[i].digest));
            size = count_bytes(*counter);
          }
          auto source = open_tar_file(blob_path(image.layers[i].digest));
          Sha256 hash;
          tar.add(layer_name, size, *source, &hash);
          if (hash.finish() != diff_ids[i])
            throw Error(context + ": layer " + image.layers[i].digest +
                        " does not match its diff ID " + diff_ids[i]);
        }
        manifest.push_back({{"Config", config_name}, {"RepoTags", names}, {"Layers", layers}});
        for (const auto& name : names) {
          auto [repo, tag] = split_name_tag(name);
          if (!diff_ids.empty()) repositories[repo][tag] = digest_hex(diff_ids.back());
        }
      }
      tar.add("manifest.json", manifest.dump());
      if (!repositories.empty()) tar.add("repositories", repositories.dump());
    } else {
      tar.add("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
      json index = {{"schemaVersion", 2}, {"manifests", json::array()}};
      std::set<std::string> written;
      auto add_blob = [&](const std::string& digest) {
        if (!written.insert(digest).second) return;
        fs::path path = blob_path(digest);
        FileSource source(path);
        tar.add("blobs/sha256/" + digest_hex(digest), fs::file_size(path), source);
      };
      for (const auto& [image, names] : images) {
        add_blob(image.manifest_digest);
        add_blob(image.id);
        for (const auto& layer : image.layers) add_blob(layer.digest);
        json descriptor = {{"mediaType", image.manifest_media_type},
                           {"digest", image.manifest_digest},
                           {"size", fs::file_size(blob_path(image.manifest_digest))}};
        if (names.empty()) index["manifests"].push_back(descriptor);
        for (const auto& name : names) {
          descriptor["annotations"] = {{"org.opencontainers.image.ref.name", name},
                                       {kContainerdNameAnnotation, name}};
          index["manifests"].push_back(descriptor);
        }
      }
      tar.add("index.json", index.dump());
    }
    tar.close();
    if (::rename(tmp.c_str(), target.c_str()) < 0) throw_errno(context);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

std::vector<std::string> Store::load_archive(const fs::path& input) {
  if (!fs::is_regular_file(input)) throw Error("cannot load " + input.string() + ": no such file");
  TempDir scratch = make_temp_dir("load");
  UnpackedArchive archive(input, scratch.path());
  std::vector<std::string> loaded;

  // Stores one image: its config bytes as they are and its layer tars (any compression).
  auto store_image = [&](const std::string& config_bytes, const std::vector<fs::path>& layer_files,
                         const std::vector<std::string>& names, const std::string& what) {
    json config;
    try {
      config = json::parse(config_bytes);
    } catch (const json::exception& e) {
      throw Error(archive.context() + ": config of " + what + " is not valid JSON: " + e.what());
    }
    Image probe;
    probe.config = config;
    auto diff_ids = probe.diff_ids();
    if (diff_ids.size() != layer_files.size())
      throw Error(archive.context() + ": " + what + " has " + std::to_string(layer_files.size()) +
                  " layers but its config lists " + std::to_string(diff_ids.size()) + " diff IDs");
    std::vector<Descriptor> layers;
    std::string parent;
    for (size_t i = 0; i < layer_files.size(); ++i) {
      StoredLayer layer = import_layer(layer_files[i], parent);
      if (layer.diff_id != diff_ids[i])
        throw Error(archive.context() + ": layer " + std::to_string(i + 1) + " of " + what +
                    " has diff ID " + layer.diff_id + " but its config says " + diff_ids[i]);
      parent = chain_id(parent, layer.diff_id);
      layers.push_back(layer.blob);
    }
    Image image = write_image_with_config(config_bytes, layers);
    for (const auto& name : names) {
      tag(name, image);
      loaded.push_back(normalize_image_name(name));
    }
    if (names.empty()) loaded.push_back(image.id);
  };

  if (archive.has("manifest.json")) {
    json manifest = archive.read_json("manifest.json");
    if (!manifest.is_array() || manifest.empty())
      throw Error(archive.context() + ": manifest.json lists no images");
    for (const auto& item : manifest) {
      if (!item.is_object() || !item.contains("Config") || !item["Config"].is_string() ||
          !item.contains("Layers") || !item["Layers"].is_array())
        throw Error(archive.context() + ": manifest.json entry without Config and Layers");
      std::string config_name = item["Config"];
      std::vector<fs::path> files;
      for (const auto& layer : item["Layers"]) files.push_back(archive.path(layer));
      std::vector<std::string> names;
      for (const auto& name : item.value("RepoTags", json::array()))
        if (name.is_string()) names.push_back(normalize_image_name(name.get<std::string>()));
      store_image(archive.read(config_name), files, names, config_name);
    }
  } else if (archive.has("index.json") && archive.has("oci-layout")) {
    auto blob = [&](const std::string& digest) -> fs::path {
      if (!is_valid_digest(digest))
        throw Error(archive.context() + ": bad digest \"" + digest + "\" in index.json");
      return archive.path("blobs/sha256/" + digest_hex(digest));
    };
    auto verified = [&](const std::string& digest) {
      std::string bytes = read_file(blob(digest));
      if (sha256_digest(bytes) != digest)
        throw Error(archive.context() + ": blob " + digest + " does not match its digest");
      return bytes;
    };
    json index = archive.read_json("index.json");
    for (const auto& entry : index.value("manifests", json::array())) {
      std::string digest = entry.value("digest", "");
      json manifest = json::parse(verified(digest));
      // An image index: take the linux/amd64 manifest, else the first.
      for (int depth = 0; manifest.contains("manifests") && depth < 4; ++depth) {
        json chosen;
        for (const auto& child : manifest["manifests"]) {
          auto platform = child.value("platform", json::object());
          if (chosen.is_null() || (platform.value("os", "") == "linux" &&
                                   platform.value("architecture", "") == "amd64"))
            chosen = child;
        }
        if (chosen.is_null()) throw Error(archive.context() + ": empty image index " + digest);
        digest = chosen.value("digest", "");
        manifest = json::parse(verified(digest));
      }
      if (!manifest.contains("config") || !manifest.contains("layers"))
        throw Error(archive.context() + ": " + digest + " is not an image manifest");
      std::vector<fs::path> files;
      for (const auto& layer : manifest["layers"]) files.push_back(blob(layer.value("digest", "")));
      auto annotations = entry.value("annotations", json::object());
      std::string name = annotations.value(kContainerdNameAnnotation, "");
      if (name.empty()) name = annotations.value("org.opencontainers.image.ref.name", "");
      std::vector<std::string> names;
      if (name.find(':') != std::string::npos || name.find('/') != std::string::npos)
        names.push_back(normalize_image_name(name));
      store_image(verified(manifest["config"].value("digest", "")), files, names, digest);
    }
  } else {
    throw Error(archive.context() +
                ": neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)");
  }
  return loaded;
}

}  // namespace slipway::store
