// COPY and ADD: sources from the build context (with .dockerignore), a stage or an image; the
// destination written into an overlay of the current image, so that it sees the image's tree
// (symlinked dirs like /var/run, existing dirs) while every write lands in the step's layer,
// or with --link onto an empty tree whose layer is reused on any parent. The cache key is the
// content digest of the sources, never their mtimes.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "builder/build_internal.h"
#include "builder/dockerignore.h"
#include "builder/file_copy.h"
#include "registry/registry.h"
#include "store/digest.h"

namespace slipway::builder::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool is_http_url(std::string_view source) {
  return source.starts_with("http://") || source.starts_with("https://");
}

bool is_url(std::string_view source) {
  return is_http_url(source) || source.starts_with("git@");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The name ADD gives a downloaded file, as BuildKit's dockerfile frontend picks it: the last
// element of the URL's decoded path (Go path.Base), or "__unnamed__" when the path has none.
// "." and ".." count as none here too: they cannot name a file.
std::string url_file_name(std::string_view url) {
  constexpr std::string_view kUnnamed = "__unnamed__";
  size_t authority = url.find("://");
  authority = authority == std::string_view::npos ? 0 : authority + 3;
  size_t path_start = url.find_first_of("/?#", authority);
  if (path_start == std::string_view::npos || url[path_start] != '/') return std::string(kUnnamed);
  std::string_view path = url.substr(path_start);
  path = path.substr(0, path.find_first_of("?#"));
  std::string decoded;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size() && hex_value(path[i + 1]) >= 0 &&
        hex_value(path[i + 2]) >= 0) {
      decoded += static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
      i += 2;
    } else {
      decoded += path[i];
    }
  }
  while (!decoded.empty() && decoded.back() == '/') decoded.pop_back();
  std::string base = decoded.substr(decoded.rfind('/') + 1);
  if (base.empty() || base == "." || base == ".." || base.find('\0') != std::string::npos)
    return std::string(kUnnamed);
  return base;
}

// One URL source of an ADD, downloaded.
struct DownloadedSource {
  // In the download dir each file is named by its index: a URL's name may hold wildcard
  // characters, which a lookup by that name would take as a pattern.
  std::string file;
  std::string name;    // what it is called in the image (inside a directory dest)
  std::string digest;  // "sha256:<hex>" of the bytes
  std::optional<int64_t> last_modified;
};

// Downloads `url` into `dir`/`file` as docker's ADD leaves it: mode 0600, mtime from
// Last-Modified when the server sent one (else the time of the download), hashed while it
// streams.
DownloadedSource download_source(const std::string& url, const fs::path& dir,
                                 const std::string& file_name) {
  DownloadedSource source{file_name, url_file_name(url), "", std::nullopt};
  fs::path path = dir / file_name;
  UniqueFd file = open_or_throw(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  store::Sha256 hash;
  registry::DownloadedUrl downloaded =
      registry::download_url(url, [&](const char* data, size_t size) {
        hash.update(data, size);
        write_all(file.get(), data, size, "a downloaded file");
      });
  source.digest = hash.finish();
  // The umask may have taken bits off; ADD's 0600 is exact.
  if (::fchmod(file.get(), 0600) != 0) throw_errno("cannot set the mode of " + path.string());
  if (downloaded.last_modified) {
    timespec times[2] = {{static_cast<time_t>(*downloaded.last_modified), 0},
                         {static_cast<time_t>(*downloaded.last_modified), 0}};
    if (::futimens(file.get(), times) != 0) throw_errno("cannot set the mtime of " + path.string());
    source.last_modified = downloaded.last_modified;
  }
  return source;
}

// The destination as a container path: relative to WORKDIR, with docker's meaning of a trailing
// '/' (or "." / "..") kept: it names a directory.
std::string resolve_destination(const std::string& dest, const std::string& workdir) {
  bool directory = dest.ends_with('/') || dest == "." || dest == ".." || dest.ends_with("/.") ||
                   dest.ends_with("/..");
  std::string full = dest.starts_with('/') ? dest : (workdir.empty() ? "/" : workdir) + "/" + dest;
  full = clean_path(full);
  if (directory && full != "/") full += "/";
  return full;
}

// The directory a source's --exclude patterns are relative to: the source up to its first
// wildcard component (the whole source when it has none).
std::string exclude_base(const std::string& source) {
  std::string cleaned = clean_path("/" + source);
  std::string base;
  size_t start = 1;
  while (start <= cleaned.size()) {
    size_t end = cleaned.find('/', start);
    if (end == std::string::npos) end = cleaned.size();
    std::string component = cleaned.substr(start, end - start);
    if (component.empty() || has_wildcards(component)) break;
    base += (base.empty() ? "" : "/") + component;
    start = end + 1;
  }
  return base;
}

// Ignore rules that add the --exclude patterns, relative to each source, to `base_patterns`.
IgnoreRules with_excludes(std::vector<std::string> patterns,
                          const std::vector<std::string>& sources,
                          const std::vector<std::string>& excludes) {
  for (const auto& exclude : excludes) {
    bool exception = exclude.starts_with('!');
    std::string pattern = exception ? exclude.substr(1) : exclude;
    for (const auto& source : sources) {
      std::string base = exclude_base(source);
      patterns.push_back((exception ? "!" : "") + (base.empty() ? pattern : base + "/" + pattern));
    }
  }
  return IgnoreRules(patterns, "--exclude");
}

// Whether a regular file is a tar archive (plain or compressed) that ADD unpacks.
bool is_tar_archive(const fs::path& file) {
  std::unique_ptr<archive, decltype(&archive_read_free)> reader(archive_read_new(),
                                                                archive_read_free);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_tar(reader.get());
  archive_read_support_format_gnutar(reader.get());
  if (archive_read_open_filename(reader.get(), file.c_str(), 65536) != ARCHIVE_OK) return false;
  archive_entry* entry = nullptr;
  return archive_read_next_header(reader.get(), &entry) == ARCHIVE_OK;
}

// Unpacks a tar archive into `dir`, keeping owners and modes, refusing entries that would land
// outside it (absolute paths, `..`, symlinked parents).
void extract_tar(const fs::path& file, const fs::path& dir) {
  std::unique_ptr<archive, decltype(&archive_read_free)> reader(archive_read_new(),
                                                                archive_read_free);
  std::unique_ptr<archive, decltype(&archive_write_free)> writer(archive_write_disk_new(),
                                                                 archive_write_free);
  archive_read_support_filter_all(reader.get());
  archive_read_support_format_tar(reader.get());
  archive_read_support_format_gnutar(reader.get());
  archive_write_disk_set_options(
      writer.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                        ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                        ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
  if (archive_read_open_filename(reader.get(), file.c_str(), 65536) != ARCHIVE_OK)
    throw Error("cannot read archive " + file.filename().string() + ": " +
                archive_error_string(reader.get()));
  // Entries are extracted relative to `dir`, so the secure-extraction checks apply to them as
  // written in the archive.
  ScopedChdir in_dir(dir);
  archive_entry* entry = nullptr;
  for (;;) {
    int status = archive_read_next_header(reader.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status != ARCHIVE_OK)
      throw Error("cannot read archive " + file.filename().string() + ": " +
                  archive_error_string(reader.get()));
    if (archive_write_header(writer.get(), entry) != ARCHIVE_OK)
      throw Error("cannot unpack " + file.filename().string() + ": " +
                  archive_error_string(writer.get()));
    const void* block;
    size_t size;
    la_int64_t offset;
    while ((status = archive_read_data_block(reader.get(), &block, &size, &offset)) == ARCHIVE_OK)
      if (archive_write_data_block(writer.get(), block, size, offset) != ARCHIVE_OK)
        throw Error("cannot unpack " + file.filename().string() + ": " +
                    archive_error_string(writer.get()));
    if (status != ARCHIVE_EOF)
      throw Error("cannot read archive " + file.filename().string() + ": " +
                  archive_error_string(reader.get()));
    archive_write_finish_entry(writer.get());
  }
}

// Heredoc body as COPY writes it: leading tabs removed for `<<-`, expanded unless quoted.
std::string heredoc_text(const ast::Heredoc& heredoc, const Variables& vars) {
  std::string body = heredoc.content;
  if (heredoc.chomp) {
    std::string stripped;
    bool line_start = true;
    for (char c : body) {
      if (line_start && c == '\t') continue;
      line_start = c == '\n';
      stripped += c;
    }
    body = std::move(stripped);
  }
  if (!heredoc.expand) return body;
  // BuildKit expands heredoc bodies raw: quotes and other backslashes stay as written. The
  // common forms are done here: $NAME, ${NAME} and \$ for a literal dollar.
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c == '\\' && i + 1 < body.size() && body[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (c != '$' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    size_t start = i + 1;
    bool braced = body[start] == '{';
    if (braced) ++start;
    size_t end = start;
    while (end < body.size() &&
           (std::isalnum(static_cast<unsigned char>(body[end])) || body[end] == '_'))
      ++end;
    if (end == start || (braced && (end >= body.size() || body[end] != '}'))) {
      out += c;
      continue;
    }
    if (auto found = vars.find(body.substr(start, end - start)); found != vars.end())
      out += found->second;
    i = braced ? end : end - 1;
  }
  return out;
}

}  // namespace

// COPY --from's content digest of `specs` in the rootfs of image `image_id`. An image ID fixes
// its layers and so their content, and with them what the specs match: the digest is kept under
// the image and the specs, in the store's cache dir (GC may drop the file; it is then computed
// again) and in exported build caches, so an unchanged COPY --from hashes nothing again, and on
// another store needs neither the source stage's files nor their download.
std::string Build::copy_from_memo_name(const std::string& image_id,
                                       const std::vector<std::string>& specs,
                                       const std::vector<std::string>& excludes) const {
  return "copyfrom-" + store::digest_hex(store::sha256_digest(image_id + "\n" + json(specs).dump() +
                                                              "\n" + json(excludes).dump()));
}

std::optional<std::string> Build::known_copy_from_digest(const std::string& memo_name) {
  try {
    std::string known = read_file(store_.root() / "cache" / memo_name);
    if (store::is_valid_digest(known)) {
      remember_copy_from_digest(memo_name, known, /*write=*/false);
      return known;
    }
  } catch (const Error&) {
    // No memo here yet, or GC just removed it.
  }
  for (const auto& source : shared_->cache_sources)
    if (auto known = source->content_digest(memo_name)) {
      remember_copy_from_digest(memo_name, *known, /*write=*/true);
      return known;
    }
  return std::nullopt;
}

void Build::remember_copy_from_digest(const std::string& memo_name, const std::string& digest,
                                      bool write) {
  if (write) {
    fs::path memo = store_.root() / "cache" / memo_name;
    fs::create_directories(memo.parent_path());
    write_file_atomic(memo, digest, /*durable=*/false);  // a lost memo is only recomputed
  }
  std::lock_guard lock(shared_->cache_mutex);
  shared_->content_digests[memo_name] = digest;
}

BuildContext& Build::context() {
  std::call_once(shared_->context_made, [&] {
    shared_->context = std::make_unique<BuildContext>(
        options_.context_dir, load_ignore_rules(options_.dockerfile, options_.context_dir), true);
    shared_->stat_cache =
        std::make_unique<StatCache>(store_.root() / "cache", options_.context_dir);
  });
  return *shared_->context;
}

void Build::dispatch(const ast::Instruction& instruction, const ast::CopyInstruction& copy) {
  copy_step(instruction, copy, false);
}

void Build::dispatch(const ast::Instruction& instruction, const ast::AddInstruction& add) {
  copy_step(instruction, add, true);
}

void Build::copy_step(const ast::Instruction& instruction, const ast::FileTransfer& transfer,
                      bool is_add) {
  const char* keyword = is_add ? "ADD" : "COPY";
  Variables vars = scope_variables();
  std::vector<std::string> specs;
  std::vector<const ast::Heredoc*> heredocs;
  size_t next_heredoc = 0;
  for (const auto& raw : transfer.sources) {
    if (!transfer.json_form && raw.starts_with("<<") && next_heredoc < transfer.heredocs.size()) {
      heredocs.push_back(&transfer.heredocs[next_heredoc++]);
      continue;
    }
    specs.push_back(transfer.json_form ? raw : words_.expand_word(raw, vars));
    if (!is_url(specs.back())) continue;
    if (!is_add) throw Error("source can't be a URL for COPY");
    if (!is_http_url(specs.back())) throw Error("ADD from a git repository is not supported yet");
  }
  if (!heredocs.empty() && !specs.empty())
    throw Error(std::string(keyword) + " with both heredoc and file sources is not supported yet");
  std::string dest_written =
      transfer.json_form ? transfer.destination : words_.expand_word(transfer.destination, vars);
  const json& config = stage_->image.config["config"];
  std::string dest = resolve_destination(dest_written, config.value("WorkingDir", "/"));
  std::string chown = flags_.get("chown") ? words_.expand_word(*flags_.get("chown"), vars) : "";
  std::string chmod = flags_.get("chmod") ? words_.expand_word(*flags_.get("chmod"), vars) : "";
  if (!chmod.empty()) (void)parse_chmod(chmod);  // a bad value fails before anything runs
  bool parents = flags_.get_bool("parents").value_or(false);
  bool unpack = flags_.get_bool("unpack").value_or(true);
  std::vector<std::string> excludes = flags_.all("exclude");
  size_t url_count = static_cast<size_t>(std::count_if(
      specs.begin(), specs.end(), [](const std::string& spec) { return is_http_url(spec); }));
  std::optional<std::string> checksum;
  if (flags_.get("checksum")) {
    ast::Position at = flags_.flag("checksum")->position;
    if (specs.size() + heredocs.size() != 1)
      throw PositionedError(at, "checksum can't be specified for multiple sources");
    if (url_count == 0)
      throw PositionedError(at, "checksum can't be specified for non-HTTP(S) sources");
    checksum = words_.expand_word(*flags_.get("checksum"), vars);
    if (!store::is_valid_digest(*checksum))
      throw PositionedError(at, "invalid checksum digest format: \"" + *checksum +
                                    "\" (expected sha256:<64 lowercase hex digits>)");
  }
  if (url_count > 0) {
    if (url_count != specs.size() || !heredocs.empty())
      throw Error("ADD with both URL and local sources is not supported yet");
    // A URL is unpacked only when asked (BuildKit's tri-state --unpack).
    add_url_step(specs, dest_written, dest, chown, chmod, checksum,
                 flags_.get_bool("unpack").value_or(false));
    return;
  }
  std::optional<std::string> from = flags_.get("from");
  if (from && from->find('$') != std::string::npos)
    throw PositionedError(flags_.flag("from")->position,
                          "variable expansion is not supported for --from");

  // The tree the sources come from.
  std::optional<OverlayMount> from_view;
  std::unique_ptr<BuildContext> owned;
  std::optional<TempDir> heredoc_dir;
  const BuildContext* tree = nullptr;
  std::string source_image_id;             // of --from
  std::function<void()> open_source_tree;  // mounts the --from image as `tree`
  if (!heredocs.empty()) {
    heredoc_dir.emplace(store_.make_temp_dir("heredoc"));
    for (const auto* heredoc : heredocs) {
      write_file_atomic(heredoc_dir->path() / heredoc->name, heredoc_text(*heredoc, vars));
      fs::permissions(heredoc_dir->path() / heredoc->name, fs::perms(0644));
      specs.push_back(heredoc->name);
    }
    owned = std::make_unique<BuildContext>(heredoc_dir->path(), IgnoreRules{}, true);
    tree = owned.get();
  } else if (from) {
    store::Image source_image;
    auto stage = find_stage(*from, current_stage_index_);
    std::optional<StageState> built = stage ? built_stage(*stage) : std::nullopt;
    if (built) {
      source_image = std::move(built->image);
    } else if (auto image = store_.try_find_image(*from)) {
      source_image = std::move(*image);
    } else {
      throw PositionedError(flags_.flag("from")->position,
                            "--from=" + *from + ": no stage or image named \"" + *from +
                                "\" (a stage must be defined before it is used; an image must "
                                "be imported or pulled first)");
    }
    source_image_id = source_image.id;
    // The source stage's files are mounted only when needed: to hash them (no memo of this copy
    // anywhere) or to copy them (the step misses).
    open_source_tree = [&, source_image] {
      ensure_layers(source_image);
      from_view.emplace(store_, source_image, "copy-from");
      owned = std::make_unique<BuildContext>(
          from_view->merged(),
          excludes.empty() ? IgnoreRules{} : with_excludes({}, specs, excludes), false);
      tree = owned.get();
    };
  } else if (!excludes.empty()) {
    owned = std::make_unique<BuildContext>(
        options_.context_dir, with_excludes(context().rules().patterns(), specs, excludes), true);
    tree = owned.get();
  } else {
    tree = &context();
  }

  std::vector<Source> sources;
  auto resolve_sources = [&] {
    if (tree == nullptr) open_source_tree();
    try {
      sources = tree->resolve(specs);
    } catch (const Error& e) {
      throw PositionedError(instruction.start, e.what());
    }
  };
  // Like BuildKit, the key follows the content of what is copied, not the whole source: a
  // change elsewhere in the source stage keeps the step cached.
  std::string digest;
  bool sources_resolved = false;
  if (source_image_id.empty()) {
    resolve_sources();
    sources_resolved = true;
    digest = content_digest(*tree, sources);
  } else {
    std::string memo = copy_from_memo_name(source_image_id, specs, excludes);
    if (auto known = known_copy_from_digest(memo)) {
      digest = *known;
    } else {
      resolve_sources();
      sources_resolved = true;
      digest = tree->digest(sources);
      remember_copy_from_digest(memo, digest, /*write=*/true);
    }
  }

  std::string created_by = keyword;
  if (parents) created_by += " --parents";
  if (!chown.empty()) created_by += " --chown=" + chown;
  if (!chmod.empty()) created_by += " --chmod=" + chmod;
  for (const auto& spec : heredocs.empty() ? specs : std::vector<std::string>{})
    created_by += " " + spec;
  for (const auto* heredoc : heredocs) created_by += " <<" + heredoc->name;
  created_by += " " + dest_written + " # buildkit";

  bool link = flags_.get_bool("link").value_or(false);
  json key = {{keyword, specs},   {"dest", dest},       {"chown", chown},
              {"chmod", chmod},   {"parents", parents}, {"excludes", excludes},
              {"unpack", unpack}, {"sources", digest}};
  // Writes the sources below `root`, which stands for the container's "/".
  auto write_sources = [&](const fs::path& root, const CopyOptions& options) {
    if (!sources_resolved) {
      resolve_sources();
      sources_resolved = true;
    }
    std::vector<Source> plain;
    for (const auto& source : sources) {
      if (is_add && unpack && source.entry.kind == FileKind::regular &&
          is_tar_archive(tree->root() / source.entry.path)) {
        // ADD unpacks a local archive into the destination directory.
        TempDir unpacked = store_.make_temp_dir("add-unpack");
        extract_tar(tree->root() / source.entry.path, unpacked.path());
        BuildContext archive_tree(unpacked.path(), IgnoreRules{}, false);
        std::string dir_dest = dest.ends_with('/') ? dest : dest + "/";
        copy_sources(archive_tree, archive_tree.resolve("/"), root, dir_dest, options);
      } else if (parents) {
        // --parents keeps each source's path below the destination (from a `/./` pivot on).
        std::string rel = source.path;
        if (size_t pivot = source.spec.find("/./"); pivot != std::string::npos) {
          std::string prefix = exclude_base(source.spec.substr(0, pivot));
          if (!prefix.empty() && rel.rfind(prefix + "/", 0) == 0)
            rel = rel.substr(prefix.size() + 1);
        }
        std::string parent =
            source.entry.kind == FileKind::directory
                ? rel
                : (rel.find('/') == std::string::npos ? std::string()
                                                      : rel.substr(0, rel.rfind('/')));
        std::string dir_dest = (dest.ends_with('/') ? dest : dest + "/") + parent;
        if (!dir_dest.ends_with('/')) dir_dest += "/";
        copy_sources(*tree, {source}, root, dir_dest, options);
      } else {
        plain.push_back(source);
      }
    }
    if (!plain.empty()) copy_sources(*tree, plain, root, dest, options);
  };
  if (link) {
    CopyOptions options = linked_copy_options(chown, chmod, key);
    linked_step(key, created_by, [&](const fs::path& root) { write_sources(root, options); });
    return;
  }
  cached_step(key, [&] {
    OverlayMount target(store_, stage_->image, is_add ? "add" : "copy");
    CopyOptions options;
    if (!chown.empty()) options.chown = resolve_chown(chown, target.merged());
    if (!chmod.empty()) options.chmod = parse_chmod(chmod);
    write_sources(target.merged(), options);
    target.unmount();
    return commit_step(target.upper(), created_by, /*keep_empty_layer=*/true);
  });
}

// COPY --link / ADD --link: the files are written on an empty tree, so the layer does not depend
// on the image below it; BuildKit then merges it on top. Its cache entry is found by a second key
// that leaves out the parent image: after a change below, the layer made before is put on the new
// parent as it is (unpacked again there), not made again.
CopyOptions Build::linked_copy_options(const std::string& chown, const std::string& chmod,
                                       json& key) {
  CopyOptions options;
  if (!chmod.empty()) options.chmod = parse_chmod(chmod);
  if (!chown.empty()) {
    ensure_layers(stage_->image);
    options.chown = resolve_chown(chown, OverlayMount(store_, stage_->image, "chown").merged());
    key["owner"] = {options.chown->uid, options.chown->gid};
  }
  key["link"] = true;
  return options;
}

void Build::linked_step(const json& step_description, const std::string& created_by,
                        const std::function<void(const fs::path&)>& write_files) {
  const std::string key = cache_key(step_description);
  const std::string linked_key =
      store::sha256_digest(std::string(kCacheKeyVersion) + "\nlinked\n" + step_description.dump());
  const store::Image parent_image = stage_->image;
  bool cached_here = true;
  auto reuse = [&] {
    auto hit = store_.cache_lookup(key);
    cached_here = hit.has_value();
    if (!hit) hit = remote_cache_lookup(key);
    if (hit) {
      stage_->image = std::move(*hit);
      return true;
    }
    auto linked = store_.cache_lookup(linked_key);
    if (!linked || linked->layers.empty()) return false;
    const store::Image& parent = stage_->image;
    std::string parent_chain = parent.chain_ids().empty() ? "" : parent.chain_ids().back();
    // Unpacked again on this parent, and stored in this build's compression.
    store::StoredLayer layer = store_.import_layer(store_.blob_path(linked->layers.back().digest),
                                                   parent_chain, options_.compression);
    json config = parent.config;
    config["rootfs"]["diff_ids"].push_back(layer.diff_id);
    std::vector<store::Descriptor> layers = parent.layers;
    layers.push_back(layer.blob);
    stage_->image = store_.write_image(add_history(std::move(config), created_by, false), layers);
    store_.cache_record(key, stage_->image);
    cached_here = true;
    return true;
  };
  std::optional<store::StepLock> building;
  if (!options_.no_cache) {
    bool hit = reuse();
    if (!hit) {
      building.emplace(store_.lock_step(linked_key));
      hit = reuse();
    }
    if (hit) {
      out_ << " ---> Using cache\n";
      ++shared_->steps_cached;
      record_step(key, parent_image, cached_here);
      return;
    }
  }
  TempDir scratch = store_.make_temp_dir("link");
  fs::path tree = scratch.path() / "tree";
  fs::create_directory(tree);
  write_files(tree);
  stage_->image = commit_step(tree, created_by, /*keep_empty_layer=*/true);
  store_.cache_record(key, stage_->image);
  store_.cache_record(linked_key, stage_->image);
  ++shared_->steps_run;
  record_step(key, parent_image, true);
}

// ADD of http(s) URLs, BuildKit's way: each file downloaded (mode 0600, unpacked only with
// --unpack=true, and then only when it is a tar archive) and
// copied to dest like a context file. The cache key holds what identifies the bytes: the
// --checksum when given, so that a hit needs no download; else the downloaded content's digest
// and Last-Modified, so the URL is fetched on every build, as docker does.
void Build::add_url_step(const std::vector<std::string>& urls, const std::string& dest_written,
                         const std::string& dest, const std::string& chown,
                         const std::string& chmod, const std::optional<std::string>& checksum,
                         bool unpack) {
  TempDir download_dir = store_.make_temp_dir("add-url");
  std::vector<DownloadedSource> downloads;
  json sources = json::array();
  if (checksum) {
    sources.push_back({{"name", url_file_name(urls.front())}, {"digest", *checksum}});
  } else {
    for (const auto& url : urls) {
      downloads.push_back(
          download_source(url, download_dir.path(), std::to_string(downloads.size())));
      const auto& got = downloads.back();
      sources.push_back({{"name", got.name},
                         {"digest", got.digest},
                         {"last_modified", got.last_modified ? json(*got.last_modified) : json()}});
    }
  }

  std::string created_by = "ADD";
  if (!chown.empty()) created_by += " --chown=" + chown;
  if (!chmod.empty()) created_by += " --chmod=" + chmod;
  for (const auto& url : urls) created_by += " " + url;
  created_by += " " + dest_written + " # buildkit";

  json key = {{"ADD-URL", sources}, {"dest", dest}, {"chown", chown}, {"chmod", chmod}};
  if (unpack) key["unpack"] = true;  // only then: the keys of earlier builds stay valid
  // Downloads what the key did not (a --checksum key needs no download) and writes the files
  // below `root`, which stands for the container's "/".
  auto write_downloads = [&](const fs::path& root, const CopyOptions& options) {
    if (checksum) {
      downloads.push_back(download_source(urls.front(), download_dir.path(), "0"));
      if (downloads.front().digest != *checksum)
        throw Error("checksum mismatch for " + urls.front() + ": expected " + *checksum + ", got " +
                    downloads.front().digest);
    }
    BuildContext tree(download_dir.path(), IgnoreRules{}, true);
    std::vector<Source> files;
    for (size_t i = 0; i < downloads.size(); ++i) {
      if (unpack && is_tar_archive(download_dir.path() / downloads[i].file)) {
        TempDir unpacked = store_.make_temp_dir("add-unpack");
        extract_tar(download_dir.path() / downloads[i].file, unpacked.path());
        BuildContext archive_tree(unpacked.path(), IgnoreRules{}, false);
        copy_sources(archive_tree, archive_tree.resolve("/"), root,
                     dest.ends_with('/') ? dest : dest + "/", options);
        continue;
      }
      Source file = tree.resolve(downloads[i].file).at(0);
      file.spec = urls[i];
      file.name = downloads[i].name;
      files.push_back(std::move(file));
    }
    if (!files.empty()) copy_sources(tree, files, root, dest, options);
  };
  if (flags_.get_bool("link").value_or(false)) {
    CopyOptions options = linked_copy_options(chown, chmod, key);
    linked_step(key, created_by, [&](const fs::path& root) { write_downloads(root, options); });
    return;
  }
  cached_step(key, [&] {
    OverlayMount target(store_, stage_->image, "add");
    CopyOptions options;
    if (!chown.empty()) options.chown = resolve_chown(chown, target.merged());
    if (!chmod.empty()) options.chmod = parse_chmod(chmod);
    write_downloads(target.merged(), options);
    target.unmount();
    return commit_step(target.upper(), created_by, /*keep_empty_layer=*/true);
  });
}

}  // namespace slipway::builder::detail
