#include "common/shared_library.h"

#include <dlfcn.h>

#include "common/error.h"

namespace slipway {

SharedLibrary::SharedLibrary(const std::string& soname, const std::string& package,
                             const std::string& purpose)
    : soname_(soname) {
  handle_.reset(dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!handle_) {
    const char* why = dlerror();
    throw Error(purpose + " needs " + soname + " (install " + package +
                "): " + (why ? why : "cannot load it"));
  }
}

void* SharedLibrary::symbol(const char* name) const {
  dlerror();  // clear, so a null symbol is told from a missing one
  void* address = dlsym(handle_.get(), name);
  if (!address) {
    const char* why = dlerror();
    throw Error(soname_ + " has no " + name + (why ? std::string(": ") + why : std::string()));
  }
  return address;
}

void SharedLibrary::Closer::operator()(void* handle) const {
  dlclose(handle);
}

}  // namespace slipway
