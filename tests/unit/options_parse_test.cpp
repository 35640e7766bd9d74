// strata-fs command line parsing: every form and option fuse-overlayfs users pass, and each error.
#include "tests/unit/options_test_util.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

// ---------------------------------------------------------------- basic forms

TEST(OptionsParse, FuseOverlayfsForm) {
  auto p = parse({"-o", "lowerdir=/a:/b:/c,upperdir=/u,workdir=/w", "/mnt/x"});
  ASSERT_TRUE(p.opts) << p.error;
  const auto& o = *p.opts;
  EXPECT_EQ(o.lowerdirs, (std::vector<std::string>{"/a", "/b", "/c"}));
  EXPECT_EQ(o.upperdir, "/u");
  EXPECT_EQ(o.workdir, "/w");
  EXPECT_EQ(o.mountpoint, "/mnt/x");
  EXPECT_FALSE(o.read_only);
  EXPECT_FALSE(o.foreground);
  EXPECT_FALSE(o.debug);
  EXPECT_TRUE(o.fuse_options.empty());
  EXPECT_TRUE(o.source.empty());
  // Defaults.
  EXPECT_TRUE(o.fsync);
  EXPECT_TRUE(o.redirect_dir);
  EXPECT_EQ(o.threads, 0);
  EXPECT_DOUBLE_EQ(o.timeout, 1.0);
  EXPECT_FALSE(o.writeback);
  EXPECT_FALSE(o.squash_to_uid);
  EXPECT_FALSE(o.squash_to_gid);
}

TEST(OptionsParse, MountFuse3FormSourceThenMountpointThenOptions) {
  auto p = parse({"overlay", "/mnt/x", "-o", "rw,nodev,nosuid," + kBase});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->source, "overlay");
  EXPECT_EQ(p.opts->mountpoint, "/mnt/x");
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{"/l1", "/l2"}));
  EXPECT_EQ(p.opts->fuse_options, (std::vector<std::string>{"rw", "nodev", "nosuid"}));
}

TEST(OptionsParse, OptionsAfterMountpoint) {
  auto p = parse({"/mnt/x", "-o", kBase, "-f"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->mountpoint, "/mnt/x");
  EXPECT_TRUE(p.opts->foreground);
}

TEST(OptionsParse, RepeatedDashOAccumulates) {
  auto p = parse({"-o", "lowerdir=/a", "-o", "upperdir=/u", "-o", "workdir=/w,allow_other",
                  "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{"/a"}));
  EXPECT_EQ(p.opts->upperdir, "/u");
  EXPECT_EQ(p.opts->workdir, "/w");
  EXPECT_TRUE(p.opts->allow_other);
}

TEST(OptionsParse, LaterValueWins) {
  auto p = parse({"-o", "lowerdir=/a:/b,fsync=0", "-o", "lowerdir=/c,fsync=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{"/c"}));
  EXPECT_TRUE(p.opts->fsync);
}

TEST(OptionsParse, GluedDashO) {
  auto p = parse({"-o" + kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->upperdir, "/u");
}

TEST(OptionsParse, ForegroundAndDebugFlags) {
  auto p = parse({"-f", "-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->foreground);
  EXPECT_FALSE(p.opts->debug);

  p = parse({"-d", "-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->debug);
  EXPECT_TRUE(p.opts->foreground);

  p = parse({"--debug", "-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->debug);

  p = parse({"-o", kBase + ",debug", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->debug);
  EXPECT_TRUE(p.opts->fuse_options.empty());

  p = parse({"-fd", "-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->debug);
  EXPECT_TRUE(p.opts->foreground);

  p = parse({"-fo" + kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->foreground);
  EXPECT_EQ(p.opts->upperdir, "/u");
}

TEST(OptionsParse, DoubleDashEndsFlags) {
  auto p = parse({"-o", kBase, "--", "-weird-mnt"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->mountpoint.substr(p.opts->mountpoint.rfind('/')), "/-weird-mnt");
}

TEST(OptionsParse, HelpAndVersion) {
  for (const char* flag : {"-h", "--help"}) {
    auto p = parse({flag});
    ASSERT_TRUE(p.opts) << p.error;
    EXPECT_TRUE(p.opts->show_help);
    EXPECT_FALSE(p.opts->show_version);
  }
  for (const char* flag : {"-V", "--version"}) {
    auto p = parse({flag});
    ASSERT_TRUE(p.opts) << p.error;
    EXPECT_TRUE(p.opts->show_version);
  }
  // Help wins even over otherwise bad command lines.
  auto p = parse({"-o", "bogus", "/m", "--help"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->show_help);
}

TEST(OptionsParse, UsageListsEveryOption) {
  std::string u = sfs::usage_text("strata-fs");
  for (const char* name :
       {"lowerdir=", "upperdir=", "workdir=", "uidmapping=", "gidmapping=", "squash_to_root",
        "squash_to_uid=", "squash_to_gid=", "static_nlink", "noacl", "noxattrs",
        "xattr_permissions=", "fsync=", "volatile", "copyup_sync=", "threaded=", "timeout=", "writeback=",
        "passthrough=", "uring=", "readdirplus=", "redirect_dir=", "ino32_t", "debug", "clone_fd", "plugins=", "allow_other",
        "allow_root", "default_permissions", "nosuid", "nodev", "noexec", "noatime",
        "relatime", "strictatime", "nodiratime", "dirsync", "fsname=", "subtype=", "max_read=",
        "context=", "fscontext=", "defcontext=", "rootcontext=", "_netdev", "nofail", "x-*",
        "-f", "-d", "--debug", "-h", "--help", "-V", "--version", "SOURCE", "MOUNTPOINT"})
    EXPECT_TRUE(contains(u, name)) << name;
  EXPECT_TRUE(contains(sfs::version_text(), "strata-fs"));
  EXPECT_EQ(sfs::version_text().back(), '\n');
}

// ---------------------------------------------------------------- escapes, empties

TEST(OptionsParse, EscapedColonCommaBackslashInPaths) {
  auto p = parse({"-o", R"(lowerdir=/a\:b:/c\,d:/e\\f,upperdir=/u\:1,workdir=/w\,2)", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{"/a:b", "/c,d", R"(/e\f)"}));
  EXPECT_EQ(p.opts->upperdir, "/u:1");
  EXPECT_EQ(p.opts->workdir, "/w,2");
}

TEST(OptionsParse, EscapedBackslashBeforeColonSplits) {
  // "\\:" is an escaped backslash followed by a separator.
  auto p = parse({"-o", R"(lowerdir=/a\\:/b)", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{R"(/a\)", "/b"}));
}

TEST(OptionsParse, OtherBackslashesKeptLiterally) {
  auto p = parse({"-o", R"(lowerdir=/a\x)", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{R"(/a\x)"}));
}

TEST(OptionsParse, EmptyOptionsAndTrailingCommas) {
  auto p = parse({"-o", ",,lowerdir=/a,", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->lowerdirs, (std::vector<std::string>{"/a"}));

  p = parse({"-o", kBase + ",", "-o", "", "-o", ",", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->upperdir, "/u");
}

TEST(OptionsParse, ContainersStorageStyle) {
  // What containers/storage passes to its mount_program.
  auto p = parse({"-o",
                  "lowerdir=/var/lib/c/l/A:/var/lib/c/l/B,upperdir=/var/lib/c/o/diff,"
                  "workdir=/var/lib/c/o/work,volatile,uidmapping=0:1000:1:1:100000:65536,"
                  "gidmapping=0:1000:1:1:100000:65536,"
                  "context=\"system_u:object_r:container_file_t:s0:c1,c2\",",
                  "/var/lib/c/o/merged"});
  ASSERT_TRUE(p.opts) << p.error;
  const auto& o = *p.opts;
  EXPECT_EQ(o.lowerdirs.size(), 2u);
  EXPECT_FALSE(o.fsync);
  ASSERT_EQ(o.uid_mappings.size(), 2u);
  EXPECT_EQ(o.gid_mappings.size(), 2u);
  // The quoted comma does not split, and is escaped for libfuse's -o syntax.
  EXPECT_EQ(o.fuse_options,
            (std::vector<std::string>{
                R"(context="system_u:object_r:container_file_t:s0:c1\,c2")"}));
}

TEST(OptionsParse, EscapedCommaInFuseOptionKeptVerbatim) {
  auto p = parse({"-o", kBase + R"(,fsname=a\,b)", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->fuse_options, (std::vector<std::string>{R"(fsname=a\,b)"}));
}

// ---------------------------------------------------------------- overlay options

TEST(OptionsParse, NoUpperdirMeansReadOnly) {
  auto p = parse({"-o", "lowerdir=/a", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->read_only);
  EXPECT_TRUE(p.opts->upperdir.empty());
  EXPECT_TRUE(p.opts->workdir.empty());
}

TEST(OptionsParse, IdMappings) {
  auto p = parse({"-o", kBase + ",uidmapping=0:1000:1:1:100000:65536,gidmapping=0:2000:10", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  const auto& u = p.opts->uid_mappings;
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(u[0].container, 0u);
  EXPECT_EQ(u[0].host, 1000u);
  EXPECT_EQ(u[0].count, 1u);
  EXPECT_EQ(u[1].container, 1u);
  EXPECT_EQ(u[1].host, 100000u);
  EXPECT_EQ(u[1].count, 65536u);
  const auto& g = p.opts->gid_mappings;
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].container, 0u);
  EXPECT_EQ(g[0].host, 2000u);
  EXPECT_EQ(g[0].count, 10u);
}

TEST(OptionsParse, IdMappingErrors) {
  for (const char* bad : {"uidmapping=", "uidmapping=0:1000", "uidmapping=0:1000:1:1",
                          "uidmapping=0:x:1", "uidmapping=0:1000:0", "uidmapping=-1:0:1",
                          "uidmapping=4294967295:0:2", "uidmapping=0:0:4294967297",
                          "gidmapping=0:1:2:3", "uidmapping=0::1"}) {
    std::string e = parse_error({"-o", kBase + "," + bad, "/m"});
    std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_TRUE(contains(e, key)) << bad << " -> " << e;
  }
  std::string e = parse_error({"-o", kBase + ",uidmapping=0:abc:1", "/m"});
  EXPECT_TRUE(contains(e, "'0:abc:1'")) << e;
  EXPECT_TRUE(contains(e, "'uidmapping'")) << e;
}

TEST(OptionsParse, Squash) {
  auto p = parse({"-o", kBase + ",squash_to_root", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->squash_to_uid, 0u);
  EXPECT_EQ(p.opts->squash_to_gid, 0u);

  p = parse({"-o", kBase + ",squash_to_uid=1000,squash_to_gid=100", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->squash_to_uid, 1000u);
  EXPECT_EQ(p.opts->squash_to_gid, 100u);

  p = parse({"-o", kBase + ",squash_to_uid=7", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->squash_to_uid, 7u);
  EXPECT_FALSE(p.opts->squash_to_gid);

  for (const char* bad : {"squash_to_uid=abc", "squash_to_uid=-1", "squash_to_gid=4294967295",
                          "squash_to_gid=", "squash_to_uid=1x", "squash_to_uid=99999999999"}) {
    std::string e = parse_error({"-o", kBase + "," + bad, "/m"});
    EXPECT_TRUE(contains(e, std::string(bad).substr(0, 13))) << bad << " -> " << e;
  }
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",squash_to_uid", "/m"}), "needs a value"));
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",squash_to_root=1", "/m"}), "takes no value"));
}

TEST(OptionsParse, SimpleFlags) {
  auto p = parse({"-o", kBase + ",static_nlink,noacl,ino32_t,clone_fd,plugins=/usr/lib/p.so",
                  "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->static_nlink);
  EXPECT_TRUE(p.opts->noacl);
  EXPECT_TRUE(p.opts->ino32);
  EXPECT_TRUE(p.opts->clone_fd);
  EXPECT_TRUE(p.opts->fuse_options.empty());
  // An empty plugins= is also fine.
  EXPECT_TRUE(parse({"-o", kBase + ",plugins=", "/m"}).opts);
}

TEST(OptionsParse, NoXattrs) {
  auto p = parse({"-o", kBase + ",noxattrs", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->noxattrs);
  p = parse({"-o", kBase + ",noxattrs=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->noxattrs);
  p = parse({"-o", kBase + ",noxattrs=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->noxattrs);
  std::string e = parse_error({"-o", kBase + ",noxattrs=2", "/m"});
  EXPECT_TRUE(contains(e, "noxattrs") && contains(e, "'2'")) << e;
}

TEST(OptionsParse, XattrPermissions) {
  auto p = parse({"-o", kBase + ",xattr_permissions=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->xattr_permissions, sfs::XattrPermissions::Off);
  p = parse({"-o", kBase + ",xattr_permissions=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->xattr_permissions, sfs::XattrPermissions::Privileged);
  p = parse({"-o", kBase + ",xattr_permissions=2", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->xattr_permissions, sfs::XattrPermissions::User);
  std::string e = parse_error({"-o", kBase + ",xattr_permissions=3", "/m"});
  EXPECT_TRUE(contains(e, "xattr_permissions") && contains(e, "'3'")) << e;
}

TEST(OptionsParse, FsyncAndVolatile) {
  auto p = parse({"-o", kBase + ",fsync=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->fsync);
  p = parse({"-o", kBase + ",fsync=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->fsync);
  p = parse({"-o", kBase + ",volatile", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->fsync);
  std::string e = parse_error({"-o", kBase + ",fsync=yes", "/m"});
  EXPECT_TRUE(contains(e, "fsync") && contains(e, "'yes'")) << e;
}

TEST(OptionsParse, CopyupSync) {
  auto p = parse({"-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->copyup_sync, sfs::CopyupSync::Ordered);
  for (auto [text, want] : {std::pair{"full", sfs::CopyupSync::Full}, std::pair{"ordered", sfs::CopyupSync::Ordered},
                            std::pair{"off", sfs::CopyupSync::Off}}) {
    p = parse({"-o", kBase + ",copyup_sync=" + text, "/m"});
    ASSERT_TRUE(p.opts) << p.error;
    EXPECT_EQ(p.opts->copyup_sync, want) << text;
  }
  std::string e = parse_error({"-o", kBase + ",copyup_sync=always", "/m"});
  EXPECT_TRUE(contains(e, "copyup_sync") && contains(e, "'always'") && contains(e, "full, ordered or off")) << e;
}

TEST(OptionsParse, Threaded) {
  auto p = parse({"-o", kBase + ",threaded=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->threads, 1);
  p = parse({"-o", kBase + ",threaded=8", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->threads, 8);
  p = parse({"-o", kBase + ",threaded=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->threads, 0);
  for (const char* bad : {"threaded=-1", "threaded=x", "threaded=", "threaded=99999999999"}) {
    std::string e = parse_error({"-o", kBase + "," + bad, "/m"});
    EXPECT_TRUE(contains(e, "threaded")) << bad << " -> " << e;
  }
}

TEST(OptionsParse, Timeout) {
  auto p = parse({"-o", kBase + ",timeout=2.5", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_DOUBLE_EQ(p.opts->timeout, 2.5);
  p = parse({"-o", kBase + ",timeout=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_DOUBLE_EQ(p.opts->timeout, 0.0);
  p = parse({"-o", kBase + ",timeout=1000000", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_DOUBLE_EQ(p.opts->timeout, 1e6);
  for (const char* bad : {"timeout=abc", "timeout=-1", "timeout=", "timeout=1s", "timeout=inf",
                          "timeout=nan"}) {
    std::string e = parse_error({"-o", kBase + "," + bad, "/m"});
    EXPECT_TRUE(contains(e, "timeout")) << bad << " -> " << e;
  }
}

TEST(OptionsParse, Writeback) {
  auto p = parse({"-o", kBase + ",writeback=1", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->writeback);
  p = parse({"-o", kBase + ",writeback=0", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->writeback);
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",writeback=2", "/m"}), "writeback"));
}

TEST(OptionsParse, Passthrough) {
  auto p = parse({"-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->passthrough);  // on by default, where the kernel and privileges allow
  for (auto [v, on] : std::vector<std::pair<std::string, bool>>{
           {"auto", true}, {"on", true}, {"1", true}, {"off", false}, {"0", false}}) {
    p = parse({"-o", kBase + ",passthrough=" + v, "/m"});
    ASSERT_TRUE(p.opts) << v << ": " << p.error;
    EXPECT_EQ(p.opts->passthrough, on) << v;
  }
  for (const char* bad : {"passthrough=yes", "passthrough=all", "passthrough=", "passthrough"})
    EXPECT_TRUE(contains(parse_error({"-o", kBase + "," + bad, "/m"}), "passthrough")) << bad;
}

TEST(OptionsParse, Readdirplus) {
  auto p = parse({"-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->readdirplus_auto);  // attributes in every reply by default
  p = parse({"-o", kBase + ",readdirplus=auto", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->readdirplus_auto);
  p = parse({"-o", kBase + ",readdirplus=always", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->readdirplus_auto);
  for (const char* bad : {"readdirplus=on", "readdirplus=1", "readdirplus=", "readdirplus"})
    EXPECT_TRUE(contains(parse_error({"-o", kBase + "," + bad, "/m"}), "readdirplus")) << bad;
}

TEST(OptionsParse, Uring) {
  auto p = parse({"-o", kBase, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->uring);  // used whenever the kernel offers it
  for (auto [v, on] : std::vector<std::pair<std::string, bool>>{
           {"auto", true}, {"on", true}, {"1", true}, {"off", false}, {"0", false}}) {
    p = parse({"-o", kBase + ",uring=" + v, "/m"});
    ASSERT_TRUE(p.opts) << v << ": " << p.error;
    EXPECT_EQ(p.opts->uring, on) << v;
  }
  for (const char* bad : {"uring=yes", "uring=", "uring"})
    EXPECT_TRUE(contains(parse_error({"-o", kBase + "," + bad, "/m"}), "uring")) << bad;
}

TEST(OptionsParse, RedirectDir) {
  for (auto [v, want] : std::vector<std::pair<std::string, bool>>{
           {"on", true}, {"follow", true}, {"off", false}, {"nofollow", false}}) {
    auto p = parse({"-o", kBase + ",redirect_dir=" + v, "/m"});
    ASSERT_TRUE(p.opts) << p.error;
    EXPECT_EQ(p.opts->redirect_dir, want) << v;
  }
  std::string e = parse_error({"-o", kBase + ",redirect_dir=maybe", "/m"});
  EXPECT_TRUE(contains(e, "redirect_dir") && contains(e, "'maybe'")) << e;
}

// ---------------------------------------------------------------- FUSE/mount options

TEST(OptionsParse, FuseOptionsPassedThroughInOrder) {
  std::vector<std::string> flags = {
      "rw",          "allow_root", "suid",     "nosuid",   "dev",        "nodev",
      "exec",        "noexec",     "atime",    "noatime",  "relatime",   "strictatime",
      "nodiratime",  "sync",       "async",    "dirsync",  "fsname=ovl", "subtype=strata",
      "max_read=131072", "context=system_u:object_r:foo_t:s0", "fscontext=a:b:c:s0",
      "defcontext=a:b:c:s0", "rootcontext=a:b:c:s0"};
  std::string opts = kBase;
  for (const auto& f : flags) opts += "," + f;
  auto p = parse({"-o", opts, "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_EQ(p.opts->fuse_options, flags);
  EXPECT_FALSE(p.opts->read_only);
  EXPECT_FALSE(p.opts->allow_other);
  EXPECT_FALSE(p.opts->default_permissions);
}

TEST(OptionsParse, RoAllowOtherDefaultPermissionsSetFlags) {
  auto p = parse({"-o", kBase + ",ro,allow_other,default_permissions", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->read_only);
  EXPECT_TRUE(p.opts->allow_other);
  EXPECT_TRUE(p.opts->default_permissions);
  EXPECT_EQ(p.opts->fuse_options,
            (std::vector<std::string>{"ro", "allow_other", "default_permissions"}));
  EXPECT_EQ(p.opts->upperdir, "/u");  // ro with an upperdir keeps the upperdir

  // rw after ro turns read-only off again; without upperdir the mount stays read-only.
  p = parse({"-o", kBase + ",ro,rw", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_FALSE(p.opts->read_only);
  p = parse({"-o", "lowerdir=/a,rw", "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->read_only);
}

TEST(OptionsParse, FstabOnlyOptionsAcceptedAndDropped) {
  auto p = parse({"-o",
                  kBase + ",auto,noauto,user,nouser,users,defaults,_netdev,nofail,"
                          "x-systemd.requires=foo.mount,x-gvfs-hide,comment=x",
                  "/m"});
  ASSERT_TRUE(p.opts) << p.error;
  EXPECT_TRUE(p.opts->fuse_options.empty());
}

TEST(OptionsParse, FuseOptionValueErrors) {
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",max_read=big", "/m"}), "max_read"));
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",fsname", "/m"}), "'fsname' needs a value"));
  EXPECT_TRUE(contains(parse_error({"-o", kBase + ",nodev=1", "/m"}), "'nodev' takes no value"));
}

// ---------------------------------------------------------------- command-line errors

TEST(OptionsParse, UnknownOption) {
  EXPECT_EQ(parse_error({"-o", kBase + ",foo", "/m"}), "unknown option 'foo'");
  EXPECT_EQ(parse_error({"-o", kBase + ",foo=bar", "/m"}), "unknown option 'foo'");
  EXPECT_TRUE(contains(parse_error({"-x", "-o", kBase, "/m"}), "'-x'"));
  EXPECT_TRUE(contains(parse_error({"--frobnicate", "-o", kBase, "/m"}), "'--frobnicate'"));
}

TEST(OptionsParse, MissingPieces) {
  EXPECT_TRUE(contains(parse_error({"-o", "upperdir=/u,workdir=/w", "/m"}), "lowerdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a,upperdir=/u", "/m"}),
                       "upperdir requires workdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a,workdir=/w", "/m"}),
                       "workdir requires upperdir"));
  EXPECT_TRUE(contains(parse_error({"-o", kBase}), "mountpoint"));
  EXPECT_TRUE(contains(parse_error({}), "mountpoint"));
  EXPECT_TRUE(contains(parse_error({"-o"}), "-o"));
  EXPECT_TRUE(contains(parse_error({"a", "b", "c", "-o", kBase}), "'c'"));
}

TEST(OptionsParse, EmptyPaths) {
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=", "/m"}), "lowerdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a::/b", "/m"}), "lowerdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a:", "/m"}), "lowerdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir", "/m"}), "lowerdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a,upperdir=,workdir=/w", "/m"}),
                       "upperdir"));
  EXPECT_TRUE(contains(parse_error({"-o", "lowerdir=/a,upperdir=/u,workdir=", "/m"}),
                       "workdir"));
}
