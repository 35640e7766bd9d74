#include "layerstore/archive/tar_agreement.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <map>
#include <string>

#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"

namespace strata {

void TarEntryQueue::push(TarEntryView&& v) {
  std::lock_guard lk(mu_);
  q_.push_back(std::move(v));
}

std::optional<TarEntryView> TarEntryQueue::pop() {
  std::lock_guard lk(mu_);
  if (q_.empty()) return std::nullopt;
  TarEntryView v = std::move(q_.front());
  q_.pop_front();
  return v;
}

namespace {

// Quoted with every control byte escaped: the error stays one line whatever the name.
std::string shown(const std::string& s) { return go_json_string(s); }

const char* go_type_name(char t) {
  switch (t) {
    case '0': return "a regular file";
    case '1': return "a hardlink";
    case '2': return "a symlink";
    case '3': return "a character device";
    case '4': return "a block device";
    case '5': return "a directory";
    case '6': return "a fifo";
    default: return "an unsupported entry";
  }
}

const char* libarchive_type_name(archive_entry* e) {
  if (archive_entry_hardlink(e)) return "a hardlink";
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return "a regular file";
    case AE_IFLNK: return "a symlink";
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFDIR: return "a directory";
    case AE_IFIFO: return "a fifo";
    case AE_IFSOCK: return "a socket";
    default: return "an entry of unknown type";
  }
}

bool same_type(char go, archive_entry* e) {
  bool hard = archive_entry_hardlink(e) != nullptr;
  if (go == '1') return hard;
  if (hard) return false;
  unsigned ft = archive_entry_filetype(e);
  switch (go) {
    case '0': return ft == AE_IFREG;
    case '2': return ft == AE_IFLNK;
    case '3': return ft == AE_IFCHR;
    case '4': return ft == AE_IFBLK;
    case '5': return ft == AE_IFDIR;
    case '6': return ft == AE_IFIFO;
    default: return false;
  }
}

}  // namespace

void check_same_entry(const std::optional<TarEntryView>& go, archive_entry* e, uint64_t n) {
  const char* raw = archive_entry_pathname(e);
  std::string name = raw ? raw : "";
  auto disagree = [&](const std::string& what) {
    throw Error("entry " + std::to_string(n) + " (" + shown(go ? go->name : name) + "): tar readers disagree: " + what);
  };
  if (!go) disagree("libarchive reads an entry Go's archive/tar does not");
  if (name != go->name) disagree("Go's archive/tar reads the name " + shown(go->name) + ", libarchive " + shown(name));
  if (!same_type(go->type, e))
    disagree(std::string("Go's archive/tar reads ") + go_type_name(go->type) + ", libarchive " + libarchive_type_name(e));
  if (go->type == '1' || go->type == '2') {
    const char* l = go->type == '1' ? archive_entry_hardlink(e) : archive_entry_symlink(e);
    std::string link = l ? l : "";
    if (link != go->linkname)
      disagree("Go's archive/tar reads the link target " + shown(go->linkname) + ", libarchive " + shown(link));
  }
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
  if (size != go->size)
    disagree("Go's archive/tar reads " + std::to_string(go->size) + " data bytes, libarchive " + std::to_string(size));
  if ((go->mode & 07777) != static_cast<int64_t>(archive_entry_perm(e) & 07777))
    disagree("the mode differs");
  if (go->uid != archive_entry_uid(e) || go->gid != archive_entry_gid(e)) disagree("the owner differs");
  if (go->mtime != archive_entry_mtime(e)) disagree("the modification time differs");
  std::map<std::string, std::string> xattrs;
  const char* xname;
  const void* value;
  size_t len;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &xname, &value, &len) == ARCHIVE_OK) {
    std::string v(static_cast<const char*>(value), len);
    // libarchive's own writer stores each xattr twice (LIBARCHIVE.xattr and SCHILY.xattr).
    auto [it, added] = xattrs.emplace(xname, v);
    if (!added && it->second != v) disagree("libarchive reads two values of xattr " + shown(xname));
  }
  if (xattrs != go->xattrs) {
    for (const auto& [k, v] : go->xattrs)
      if (!xattrs.count(k) || xattrs[k] != v) disagree("the xattr " + shown(k) + " differs");
    for (const auto& [k, v] : xattrs)
      if (!go->xattrs.count(k)) disagree("libarchive reads an xattr " + shown(k) + " Go's archive/tar does not");
  }
}

void check_no_entry_left(const std::optional<TarEntryView>& go) {
  if (go)
    throw Error("entry " + std::to_string(go->index) + " (" + shown(go->name) +
                "): tar readers disagree: Go's archive/tar reads it, libarchive has ended the archive");
}

}  // namespace strata
