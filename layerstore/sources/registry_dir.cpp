// A registry's storage directory as Debian's docker-registry (distribution 2.8) writes it:
// docker/registry/v2/{blobs/sha256/<2>/<hex>/data, repositories/<name>/_manifests,_layers}.
// Blobs are only reachable through a repository that links them, as in the registry.
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/image_source.hpp"

namespace strata {

ImageToLoad read_registry_dir(const std::string& dir, const Reference& ref, const Platform& p) {
  std::string v2 = dir + "/docker/registry/v2";
  if (!path_exists(v2)) throw Error(dir + ": not a registry storage dir (no docker/registry/v2)");
  // Registry repository names are full paths; try the name as given and Docker Hub's form.
  std::string repo_dir = v2 + "/repositories/" + ref.name;
  if (!path_exists(repo_dir) && ref.name.find('/') == std::string::npos &&
      path_exists(v2 + "/repositories/library/" + ref.name))
    repo_dir = v2 + "/repositories/library/" + ref.name;
  if (!path_exists(repo_dir)) throw Error("repository " + ref.name + " not found in " + dir);
  std::string mdigest;
  if (!ref.digest.empty()) {
    mdigest = ref.digest;
  } else {
    std::string link = repo_dir + "/_manifests/tags/" + ref.tag + "/current/link";
    if (!path_exists(link)) throw Error("tag " + ref.str() + " not found in " + dir);
    mdigest = read_file(link);
    require_valid_digest(mdigest, link);
  }
  if (!path_exists(repo_dir + "/_manifests/revisions/sha256/" + digest_hex(mdigest) + "/link"))
    throw Error("manifest " + mdigest + " is not linked in repository " + ref.name);
  auto files = open_dir_files(v2);
  auto blob_path = [](const std::string& d) {
    std::string hex = digest_hex(d);
    return "blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
  };
  BlobByDigest blobs = [&](const std::string& d) {
    require_valid_digest(d, "descriptor");
    bool linked = path_exists(repo_dir + "/_layers/sha256/" + digest_hex(d) + "/link") ||
                  path_exists(repo_dir + "/_manifests/revisions/sha256/" + digest_hex(d) + "/link");
    if (!linked) throw Error("blob " + d + " is not linked in repository " + ref.name);
    return files->blob(blob_path(d));
  };
  BlobRef mb = files->blob(blob_path(mdigest));
  std::string bytes = mb.read_all();
  if (sha256_digest(bytes) != mdigest) throw Error(mb.name + ": manifest digest mismatch");
  ImageToLoad img = image_from_manifest(bytes, mb.name, blobs, p);
  Reference tag = ref;
  if (tag.digest.empty()) img.tags.push_back(tag);
  img.tags.push_back(Reference{ref.name, "", mdigest});
  img.manifest_digest = mdigest;
  img.source_repo = ref.name;
  return img;
}

}  // namespace strata
