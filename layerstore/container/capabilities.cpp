#include "layerstore/container/capabilities.hpp"

#include <sys/capability.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <memory>
#include <type_traits>

#include "layerstore/error.hpp"

namespace strata {

namespace {

CapabilityMask bit(int cap) { return CapabilityMask{1} << cap; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_all(const std::string& name) { return lower(name) == "all" || lower(name) == "cap_all"; }

struct CapFree {
  void operator()(cap_t c) const { cap_free(c); }
};
using CapState = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

}  // namespace

CapabilityMask docker_default_capabilities() {
  CapabilityMask m = 0;
  for (int c : {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW, CAP_SETGID, CAP_SETUID,
                CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE})
    m |= bit(c);
  return m;
}

CapabilityMask all_capabilities() {
  int n = std::min<int>(cap_max_bits(), 64);
  return n >= 64 ? ~CapabilityMask{0} : bit(n) - 1;
}

int capability_from_name(const std::string& name) {
  std::string n = lower(name);
  if (n.rfind("cap_", 0) != 0) n = "cap_" + n;
  cap_value_t v;
  // libcap also reads plain numbers; Docker takes names only.
  if (n.size() > 4 && std::isdigit(static_cast<unsigned char>(n[4]))) throw Error("unknown capability \"" + name + "\"");
  if (cap_from_name(n.c_str(), &v) != 0 || v < 0 || v >= 64) throw Error("unknown capability \"" + name + "\"");
  return v;
}

CapabilityMask resolve_capabilities(const std::vector<std::string>& add, const std::vector<std::string>& drop) {
  CapabilityMask add_mask = 0, drop_mask = 0;
  bool add_all = false, drop_all = false;
  for (const auto& a : add) is_all(a) ? void(add_all = true) : void(add_mask |= bit(capability_from_name(a)));
  for (const auto& d : drop) is_all(d) ? void(drop_all = true) : void(drop_mask |= bit(capability_from_name(d)));
  if (add_all) return all_capabilities() & ~drop_mask;
  if (drop_all) return add_mask;
  return (docker_default_capabilities() & ~drop_mask) | add_mask;
}

void drop_bounding_set(CapabilityMask keep) {
  int n = std::min<int>(cap_max_bits(), 64);
  for (int c = 0; c < n; c++) {
    if (keep & bit(c)) continue;
    if (cap_drop_bound(c) != 0 && errno != EINVAL) throw_errno("drop capability " + std::to_string(c) + " from the bounding set");
  }
}

void set_process_capabilities(CapabilityMask keep) {
  CapState now(cap_get_proc());
  if (!now) throw_errno("read the process capabilities");
  CapState want(cap_init());
  if (!want) throw_errno("cap_init");
  int n = std::min<int>(cap_max_bits(), 64);
  for (cap_value_t c = 0; c < n; c++) {
    if (!(keep & bit(c))) continue;
    cap_flag_value_t have = CAP_CLEAR;
    // A capability the caller itself lacks (here: one dropped from our own bounding set) cannot
    // be granted; leave it out rather than fail.
    if (cap_get_flag(now.get(), c, CAP_PERMITTED, &have) != 0 || have != CAP_SET) continue;
    if (cap_set_flag(want.get(), CAP_PERMITTED, 1, &c, CAP_SET) != 0 ||
        cap_set_flag(want.get(), CAP_EFFECTIVE, 1, &c, CAP_SET) != 0)
      throw_errno("cap_set_flag");
  }
  if (cap_set_proc(want.get()) != 0) throw_errno("set the process capabilities");
  if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) throw_errno("clear the ambient capabilities");
}

}  // namespace strata
