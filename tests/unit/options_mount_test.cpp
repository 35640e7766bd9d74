// The -o string strata-fs hands libfuse: fuse-overlayfs 1.10's defaults (measured on its mounts:
// as root `rw,nodev,noatime` + `default_permissions,allow_other`, set-uid honoured; rootless
// through fusermount3 `rw,nosuid,nodev,noatime` + `default_permissions`), and the caller's
// options winning over them.
#include "tests/unit/options_test_util.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace {

// The comma-separated tokens (no test here uses escaped commas).
std::vector<std::string> tokens(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t c = s.find(',', pos);
    out.push_back(s.substr(pos, c == std::string::npos ? std::string::npos : c - pos));
    if (c == std::string::npos) return out;
    pos = c + 1;
  }
}

bool has(const std::vector<std::string>& v, const std::string& t) {
  return std::find(v.begin(), v.end(), t) != v.end();
}

size_t count(const std::vector<std::string>& v, const std::string& t) {
  return static_cast<size_t>(std::count(v.begin(), v.end(), t));
}

std::string mount_opts(const std::string& opts, bool as_root, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"-o", opts};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back("/m");
  Parsed p = parse(args);
  EXPECT_TRUE(p.opts) << p.error;
  return p.opts ? sfs::fuse_mount_options(*p.opts, as_root) : "";
}

}  // namespace

TEST(OptionsMount, RootDefaultsAreFuseOverlayfsOnes) {
  EXPECT_EQ(mount_opts(kBase, true),
            "default_permissions,subtype=strata-fs,allow_other,suid,noatime,fsname=strata-fs");
}

TEST(OptionsMount, RootlessHasNeitherAllowOtherNorSuid) {
  // fusermount3 refuses allow_other without user_allow_other in /etc/fuse.conf: never add it.
  EXPECT_EQ(mount_opts(kBase, false), "default_permissions,subtype=strata-fs,noatime,fsname=strata-fs");
  // Asked for explicitly, it is passed on (and fusermount3 decides).
  auto t = tokens(mount_opts(kBase + ",allow_other", false));
  EXPECT_EQ(count(t, "allow_other"), 1u);
  EXPECT_FALSE(has(t, "suid"));
}

TEST(OptionsMount, ExplicitNosuidWinsAsRoot) {
  auto t = tokens(mount_opts(kBase + ",nosuid", true));
  EXPECT_TRUE(has(t, "nosuid"));
  EXPECT_FALSE(has(t, "suid"));
  EXPECT_TRUE(has(t, "allow_other"));
  // podman's mount_program line: mount.fuse3-style SOURCE and nodev,nosuid,noexec.
  t = tokens(mount_opts("rw,nodev,nosuid,noexec," + kBase, true, {"overlay"}));
  EXPECT_FALSE(has(t, "suid"));
  for (const char* f : {"nosuid", "nodev", "noexec", "allow_other", "noatime", "fsname=overlay"})
    EXPECT_TRUE(has(t, f)) << f;
  // suid then nosuid: the last one wins in libfuse, and no default suid is added before them.
  t = tokens(mount_opts(kBase + ",suid,nosuid", true));
  EXPECT_EQ(count(t, "suid"), 1u);
  EXPECT_EQ(count(t, "nosuid"), 1u);
  auto s = mount_opts(kBase + ",suid,nosuid", true);
  EXPECT_LT(s.find(",suid,"), s.find(",nosuid"));
}

TEST(OptionsMount, NodevNoexecKeepRootDefaults) {
  for (const char* f : {"nodev", "noexec", "dev", "exec", "suid"}) {
    auto t = tokens(mount_opts(kBase + "," + f, true));
    EXPECT_TRUE(has(t, "allow_other")) << f;
    EXPECT_EQ(count(t, "suid"), 1u) << f;
    EXPECT_FALSE(has(t, "nosuid")) << f;
    EXPECT_EQ(count(t, f), 1u) << f;
  }
}

TEST(OptionsMount, AllowOtherGivenOnceAllowRootReplacesIt) {
  auto t = tokens(mount_opts(kBase + ",allow_other,default_permissions", true));
  EXPECT_EQ(count(t, "allow_other"), 1u);
  EXPECT_EQ(count(t, "default_permissions"), 1u);
  t = tokens(mount_opts(kBase + ",allow_root", true));
  EXPECT_TRUE(has(t, "allow_root"));
  EXPECT_FALSE(has(t, "allow_other"));  // libfuse refuses both at once
  EXPECT_TRUE(has(t, "suid"));
}

TEST(OptionsMount, AtimeChoiceReplacesNoatime) {
  EXPECT_TRUE(has(tokens(mount_opts(kBase, false)), "noatime"));
  for (const char* f : {"atime", "relatime", "norelatime", "nostrictatime"}) {
    auto t = tokens(mount_opts(kBase + "," + f, true));
    EXPECT_FALSE(has(t, "noatime")) << f;
    EXPECT_TRUE(has(t, "atime")) << f;  // libfuse knows only atime/noatime: relatime is atime
    EXPECT_FALSE(has(t, "relatime")) << f;
  }
  auto t = tokens(mount_opts(kBase + ",noatime", true));
  EXPECT_EQ(count(t, "noatime"), 1u);
  t = tokens(mount_opts(kBase + ",diratime,symfollow", true));  // kernel defaults: dropped
  EXPECT_FALSE(has(t, "diratime"));
  EXPECT_FALSE(has(t, "symfollow"));
  EXPECT_TRUE(has(t, "noatime"));
}

TEST(OptionsMount, ReadOnlyAddsRoOnce) {
  auto t = tokens(mount_opts("lowerdir=/a", true));  // no upperdir
  EXPECT_EQ(t.back(), "ro");
  t = tokens(mount_opts(kBase + ",ro", true));
  EXPECT_EQ(count(t, "ro"), 1u);
  // Without an upperdir an explicit rw does not make it writable: ro comes last.
  t = tokens(mount_opts("lowerdir=/a,ro,rw", true));
  EXPECT_EQ(t.back(), "ro");
  // A rootcontext= is not an ro (the old substring test took ",ro" in it for one).
  t = tokens(mount_opts("lowerdir=/a,rootcontext=a:b:c:s0", true));
  EXPECT_EQ(t.back(), "ro");
  EXPECT_FALSE(has(tokens(mount_opts(kBase, true)), "ro"));
}

TEST(OptionsMount, FsnameFromSourceOrOption) {
  EXPECT_TRUE(has(tokens(mount_opts(kBase, true, {"overlay"})), "fsname=overlay"));
  auto t = tokens(mount_opts(kBase + ",fsname=strata", true));
  EXPECT_EQ(count(t, "fsname=strata"), 1u);
  EXPECT_FALSE(has(t, "fsname=strata-fs"));
}
