#include <nlohmann/json.hpp>

#include "runtime/runtime.h"

namespace slipway::runtime {

ImageContainer prepare_image_container(const store::Store& store, const store::Image& image,
                                       std::string_view purpose) {
  ImageContainer container{store.make_temp_dir(purpose), {}};
  const std::filesystem::path& dir = container.scratch.path();
  for (const char* sub : {"upper", "work", "rootfs"}) std::filesystem::create_directory(dir / sub);
  ContainerSpec& spec = container.spec;
  spec.layers_base = store.root();
  spec.lower_dirs = store.overlay_lowers(image);
  spec.upper_dir = dir / "upper";
  spec.work_dir = dir / "work";
  spec.rootfs = dir / "rootfs";
  auto config = image.config.find("config");
  if (config != image.config.end() && config->is_object()) {
    if (auto env = config->find("Env"); env != config->end() && env->is_array())
      spec.env = env->get<std::vector<std::string>>();
    // An empty WorkingDir keeps ContainerSpec's default, "/".
    if (auto workdir = config->find("WorkingDir"); workdir != config->end() &&
                                                   workdir->is_string() &&
                                                   !workdir->get_ref<const std::string&>().empty())
      spec.working_dir = workdir->get<std::string>();
    if (auto user = config->find("User"); user != config->end() && user->is_string())
      spec.user = user->get<std::string>();
  }
  return container;
}

}  // namespace slipway::runtime
