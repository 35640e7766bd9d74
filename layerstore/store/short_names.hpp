#pragma once
// Short names as podman resolves them in local storage: "debian:12" (no registry) is Docker's
// docker.io/library/debian:12 when that is stored, else localhost/debian:12, else the one
// stored REGISTRY/.../debian:12. Names with a registry match only themselves.
#include <optional>
#include <string>

#include "layerstore/store/image_db.hpp"

namespace strata {

// The stored reference `image` names: itself when stored, else the short-name match. nullopt
// when nothing matches (or `image` is no reference); throws Error naming the candidates when
// several images match a short name.
std::optional<Reference> stored_reference(const std::string& image, const Repositories& repos);

// For "no such image": "; did you mean A, B?" naming stored references with the same or a
// close last name component (a typo, another tag), or "" when none is close.
std::string close_names_hint(const std::string& image, const Repositories& repos);

}  // namespace strata
