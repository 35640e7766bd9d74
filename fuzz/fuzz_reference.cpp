// Fuzz target 3: the image reference parser (layerstore/store/reference.cpp): never crashes,
// and what it accepts prints back to a reference it parses to the same value.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "layerstore/store/reference.hpp"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  auto r = parse_reference(s);
  familiar_name(s);
  if (!r) return 0;
  auto again = parse_reference(r->str());
  if (!again || again->name != r->name || again->tag != r->tag || again->digest != r->digest) {
    std::fprintf(stderr, "\"%s\" parses to \"%s\", which does not parse back the same\n", s.c_str(), r->str().c_str());
    std::abort();
  }
  return 0;
}
