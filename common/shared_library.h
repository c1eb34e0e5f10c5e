// A shared library loaded at run time (dlopen), for the few commands that need it: slipway links
// libcurl and libnftables this way so that every other command (ps, images, a cached build) starts
// without mapping and relocating them and the ~30 libraries they bring.
#pragma once

#include <memory>
#include <string>

namespace slipway {

class SharedLibrary {
 public:
  // Loads `soname` (RTLD_NOW | RTLD_LOCAL). `purpose` names what needs it, for the one-line
  // error: "<purpose> needs libcurl.so.4 (install libcurl4): <dlerror>".
  SharedLibrary(const std::string& soname, const std::string& package, const std::string& purpose);

  // The address of `name`, cast to the function pointer type F. Throws if the library lacks it.
  template <typename F>
  F function(const char* name) const {
    return reinterpret_cast<F>(symbol(name));
  }
  // Fills `pointer` with function(name), deducing the type from the pointer.
  template <typename F>
  void bind(F& pointer, const char* name) const {
    pointer = function<F>(name);
  }

 private:
  void* symbol(const char* name) const;

  struct Closer {
    void operator()(void* handle) const;
  };
  std::unique_ptr<void, Closer> handle_;
  std::string soname_;
};

}  // namespace slipway
