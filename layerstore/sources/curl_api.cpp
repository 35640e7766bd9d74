#include "layerstore/sources/curl_api.hpp"

#include <dlfcn.h>

#include <string>
#include <type_traits>

#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr const char* kSoname = "libcurl.so.4";

CurlApi load_curl() {
  // Never unloaded: its handles and global state live as long as the process.
  void* lib = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!lib) throw Error(std::string("cannot load ") + kSoname + " (install libcurl4): " + dlerror());
  CurlApi api{};
  auto bind = [lib](auto& fn, const char* name) {
    void* p = dlsym(lib, name);
    if (!p) throw Error(std::string(kSoname) + " has no " + name + " (libcurl 7.62 or newer is needed)");
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  bind(api.global_init, "curl_global_init");
  bind(api.share_init, "curl_share_init");
  bind(api.share_setopt, "curl_share_setopt");
  bind(api.easy_init, "curl_easy_init");
  bind(api.easy_cleanup, "curl_easy_cleanup");
  bind(api.easy_setopt, "curl_easy_setopt");
  bind(api.easy_getinfo, "curl_easy_getinfo");
  bind(api.easy_perform, "curl_easy_perform");
  bind(api.easy_strerror, "curl_easy_strerror");
  bind(api.easy_escape, "curl_easy_escape");
  bind(api.slist_append, "curl_slist_append");
  bind(api.slist_free_all, "curl_slist_free_all");
  bind(api.url, "curl_url");
  bind(api.url_cleanup, "curl_url_cleanup");
  bind(api.url_set, "curl_url_set");
  bind(api.url_get, "curl_url_get");
  bind(api.free, "curl_free");
  return api;
}

}  // namespace

const CurlApi& curl_api() {
  static const CurlApi api = load_curl();  // a throw leaves it unset: the next call tries again
  return api;
}

}  // namespace strata
