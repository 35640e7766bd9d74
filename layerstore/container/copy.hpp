#pragma once
// `strata cp`: files between the host and a container, running or stopped, as `docker cp`.
// The container's side runs in a child inside the container's root (a running container's
// namespaces; a stopped one's rw view mounted by strata-fs in a private mount namespace) and
// chrooted there, so every path and symlink of the container resolves within its root: a link
// it planted pointing at /etc/shadow names the container's own file, never the host's. The two
// sides exchange a tar stream, as docker cp does.
#include <string>

#include "layerstore/container/container.hpp"

namespace strata {

struct CopyOptions {
  bool follow_link = false;  // -L: copy what a symlink SRC points to, not the link
  // Files copied in keep the uid and gid of the host's files (or of the `-` tar), as dockerd
  // 20.10 does; -a gives them to the container's User instead, when it has one.
  bool archive = false;
};

// CONTAINER:SRC to host DEST; DEST "-" writes a tar of SRC to stdout.
void copy_from_container(const StoreLayout& l, const Container& c, const std::string& src, const std::string& dest,
                         const CopyOptions& o);

// Host SRC to CONTAINER:DEST; SRC "-" reads a tar (plain, gzip or zstd) from stdin and
// extracts it into the directory DEST.
void copy_into_container(const StoreLayout& l, const Container& c, const std::string& src, const std::string& dest,
                         const CopyOptions& o);

}  // namespace strata
