#include "layerstore/store/short_names.hpp"

#include <algorithm>
#include <set>
#include <vector>

#include "layerstore/error.hpp"

namespace strata {

namespace {

// Whether the name's first component is a registry host, as Docker splits names.
bool has_registry(const std::string& name) {
  size_t slash = name.find('/');
  if (slash == std::string::npos) return false;
  std::string first = name.substr(0, slash);
  return first.find_first_of(".:") != std::string::npos || first == "localhost";
}

std::string last_component(const std::string& name) { return name.substr(name.rfind('/') + 1); }

// The same reference under another repository name.
Reference renamed(const Reference& r, const std::string& name) {
  Reference o = r;
  o.name = name;
  return o;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<Reference> stored_reference(const std::string& image, const Repositories& repos) {
  auto ref = parse_reference(image);
  if (!ref) return std::nullopt;
  if (repos.lookup(*ref)) return ref;
  // Familiar names of docker.io images have no registry either ("user/app" is
  // docker.io/user/app): only a name the user wrote without one is short.
  if (has_registry(ref->name) || has_registry(image)) return std::nullopt;
  Reference local = renamed(*ref, "localhost/" + ref->name);
  if (repos.lookup(local)) return local;
  std::vector<Reference> found;
  std::set<std::string> ids;
  for (const auto& [name, refs] : repos.all()) {
    if (name.size() <= ref->name.size() || name.compare(name.size() - ref->name.size() - 1, std::string::npos,
                                                          "/" + ref->name) != 0)
      continue;
    Reference r = renamed(*ref, name);
    if (auto id = repos.lookup(r)) {
      found.push_back(r);
      ids.insert(*id);
    }
  }
  if (ids.size() > 1) {
    std::string names;
    for (const auto& r : found) names += (names.empty() ? "" : ", ") + r.str();
    throw Error("short name \"" + image + "\" is ambiguous: it matches " + names + " (give the full name)");
  }
  if (found.empty()) return std::nullopt;
  return found.front();
}

std::string close_names_hint(const std::string& image, const Repositories& repos) {
  auto ref = parse_reference(image);
  if (!ref) return "";
  std::string want = last_component(ref->name);
  std::vector<std::string> close;
  for (const auto& [name, refs] : repos.all()) {
    std::string last = last_component(name);
    // One or two typos in a name long enough that this is not any name at all.
    if (last != want && !(want.size() >= 4 && edit_distance(last, want) <= (want.size() >= 8 ? 2u : 1u))) continue;
    for (const auto& [r, id] : refs) close.push_back(r);
  }
  if (close.empty()) return "";
  std::string out;
  for (size_t i = 0; i < close.size() && i < 5; i++) out += (i ? ", " : "") + close[i];
  if (close.size() > 5) out += ", ...";
  return "; did you mean " + out + "?";
}

}  // namespace strata
