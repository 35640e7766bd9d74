#pragma once
// `--change` of commit and import: Dockerfile instructions applied to an image config's
// "config" object as `docker commit --change` does (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
// LABEL, ONBUILD, USER, VOLUME, WORKDIR; any case; JSON or shell form; repeatable, in order).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace strata {

// Applies every change to `config` (the "config" object of an image config, or null), or
// none: a bad change throws Error naming it and leaves `config` as it was.
void apply_config_changes(nlohmann::json& config, const std::vector<std::string>& changes);

}  // namespace strata
