// Overlay engine helpers (override_stat, IdMapping, whiteout names) and owner
// translation through the Overlay API.
#include <sys/sysmacros.h>

#include "fs/core/id_mapping.hpp"
#include "fs/core/layer_stack.hpp"
#include "fs/core/override_stat.hpp"
#include "fs/core/whiteout.hpp"
#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

// ---------------------------------------------------------------------------------------------
// override_stat

TEST(OverrideStat, ParsesThreeFields) {
  auto o = parse_override_stat("1000:1001:0755");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->uid, 1000u);
  EXPECT_EQ(o->gid, 1001u);
  EXPECT_EQ(o->mode, 0755u);
  EXPECT_FALSE(o->type);
}

TEST(OverrideStat, ParsesTypesAndDevices) {
  EXPECT_EQ(*parse_override_stat("0:0:0644:file")->type, mode_t(S_IFREG));
  EXPECT_EQ(*parse_override_stat("0:0:0755:dir")->type, mode_t(S_IFDIR));
  EXPECT_EQ(*parse_override_stat("0:0:0777:symlink")->type, mode_t(S_IFLNK));
  EXPECT_EQ(*parse_override_stat("0:0:0644:pipe")->type, mode_t(S_IFIFO));
  EXPECT_EQ(*parse_override_stat("0:0:0644:socket")->type, mode_t(S_IFSOCK));
  auto c = parse_override_stat("0:0:0666:char-1-3");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->type, mode_t(S_IFCHR));
  EXPECT_EQ(c->rdev, makedev(1, 3));
  auto b = parse_override_stat("0:0:0660:block-8-17");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b->type, mode_t(S_IFBLK));
  EXPECT_EQ(b->rdev, makedev(8, 17));
  // Trailing NUL or newline, as some writers store them.
  EXPECT_TRUE(parse_override_stat(std::string_view("1:2:0700\0", 9)));
  EXPECT_EQ(parse_override_stat("1:2:0700\n")->mode, 0700u);
  // Mode keeps the set-id and sticky bits only.
  EXPECT_EQ(parse_override_stat("0:0:04755")->mode, 04755u);
  EXPECT_EQ(parse_override_stat("0:0:0100644")->mode, 0644u);
}

TEST(OverrideStat, RejectsMalformed) {
  for (const char* bad : {"", "1000", "1000:1000", "a:0:0644", "0:b:0644", "0:0:0999", "0:0:", "-1:0:0644",
                          "0:0:0644:char-1", "0:0:0644:char-x-1", "0:0:0644:block-1-2-3"})
    EXPECT_FALSE(parse_override_stat(bad)) << bad;
}

TEST(OverrideStat, FormatParseRoundTrip) {
  std::vector<OverrideStat> cases;
  OverrideStat plain;
  plain.uid = 1000;
  plain.gid = 100;
  plain.mode = 0640;
  cases.push_back(plain);
  for (mode_t type : {S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK}) {
    OverrideStat o;
    o.uid = 4294967294u;
    o.gid = 7;
    o.mode = 06755;
    o.type = type;
    if (type == S_IFCHR || type == S_IFBLK) o.rdev = makedev(259, 70000);
    cases.push_back(o);
  }
  for (const auto& o : cases) {
    std::string text = format_override_stat(o);
    auto back = parse_override_stat(text);
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(back->uid, o.uid) << text;
    EXPECT_EQ(back->gid, o.gid) << text;
    EXPECT_EQ(back->mode, o.mode) << text;
    EXPECT_EQ(back->type, o.type) << text;
    EXPECT_EQ(back->rdev, o.rdev) << text;
    EXPECT_EQ(format_override_stat(*back), text);
  }
  EXPECT_EQ(format_override_stat(plain), "1000:100:0640");
  OverrideStat dev;
  dev.mode = 0666;
  dev.type = S_IFCHR;
  dev.rdev = makedev(1, 3);
  EXPECT_EQ(format_override_stat(dev), "0:0:0666:char-1-3");
}

// ---------------------------------------------------------------------------------------------
// IdMapping

TEST(IdMapping, IdentityWithoutRanges) {
  IdMapping m;
  EXPECT_TRUE(m.identity());
  EXPECT_EQ(m.to_shown(0), 0u);
  EXPECT_EQ(m.to_shown(1234), 1234u);
  EXPECT_EQ(m.to_stored(1234), 1234u);
}

TEST(IdMapping, FuseOverlayfsSemantics) {
  // uidmapping=0:1000:1 → IdMapRange{container=0, host=1000, count=1}.
  IdMapping m({IdMapRange{0, 1000, 1}}, std::nullopt);
  EXPECT_FALSE(m.identity());
  EXPECT_EQ(m.to_shown(0), 1000u);      // stored 0 shows as 1000
  EXPECT_EQ(m.to_stored(1000), 0u);     // creating as 1000 stores 0
  EXPECT_EQ(m.to_shown(1), IdMapping::kOverflowId);  // unmapped stored ids: overflow
  EXPECT_EQ(m.to_stored(5), 5u);        // unmapped callers store as themselves
}

TEST(IdMapping, SeveralRangesBothDirections) {
  IdMapping m({IdMapRange{0, 1000, 1}, IdMapRange{1, 100000, 65536}}, std::nullopt);
  for (uint32_t stored : {0u, 1u, 2u, 500u, 65536u}) {
    uint32_t shown = m.to_shown(stored);
    EXPECT_NE(shown, IdMapping::kOverflowId) << stored;
    EXPECT_EQ(m.to_stored(shown), stored) << stored;
  }
  EXPECT_EQ(m.to_shown(1), 100000u);
  EXPECT_EQ(m.to_shown(65536), 165535u);
  EXPECT_EQ(m.to_shown(65537), IdMapping::kOverflowId);
  EXPECT_EQ(m.to_stored(165535), 65536u);
  EXPECT_EQ(m.to_stored(165536), 165536u);
}

TEST(IdMapping, Squash) {
  IdMapping m({}, 0u);
  EXPECT_FALSE(m.identity());
  EXPECT_EQ(m.to_shown(0), 0u);
  EXPECT_EQ(m.to_shown(1234), 0u);
  EXPECT_EQ(m.to_stored(1234), 1234u);
}

// ---------------------------------------------------------------------------------------------
// whiteout names

TEST(WhiteoutNames, ParseAndMarkers) {
  std::string_view hidden;
  EXPECT_TRUE(parse_whiteout_name(".wh.foo", hidden));
  EXPECT_EQ(hidden, "foo");
  EXPECT_TRUE(parse_whiteout_name(".wh..hidden", hidden));
  EXPECT_EQ(hidden, ".hidden");
  EXPECT_FALSE(parse_whiteout_name(".wh..wh..opq", hidden));
  EXPECT_FALSE(parse_whiteout_name(".wh.", hidden));
  EXPECT_FALSE(parse_whiteout_name("foo", hidden));
  EXPECT_FALSE(parse_whiteout_name(".wh", hidden));
  EXPECT_TRUE(is_marker_name(".wh..wh..opq"));
  EXPECT_TRUE(is_marker_name(".wh.x"));
  EXPECT_FALSE(is_marker_name(".whx"));
  EXPECT_FALSE(is_marker_name("a.wh.x"));
  struct stat st {};
  st.st_mode = S_IFCHR;
  st.st_rdev = makedev(0, 0);
  EXPECT_TRUE(is_whiteout_device(st));
  st.st_rdev = makedev(1, 3);
  EXPECT_FALSE(is_whiteout_device(st));
  st.st_mode = S_IFREG;
  st.st_rdev = 0;
  EXPECT_FALSE(is_whiteout_device(st));
}

// ---------------------------------------------------------------------------------------------
// Scanning a layer directory for whiteout files (lets lookups skip the .wh.NAME probe)

using WhiteoutScan = LayerFixture;

TEST_F(WhiteoutScan, FindsWhiteoutFilesButNotTheOpaqueMarker) {
  make_dir(lo(1, "plain"));
  write_file(lo(1, "plain/a"), "a");
  make_dir(lo(1, "opaque"));
  write_file(lo(1, "opaque/.wh..wh..opq"), "");
  make_dir(lo(1, "hides"));
  write_file(lo(1, "hides/b"), "b");
  make_whiteout_file(lo(1, "hides"), "gone");
  DirLayerSource layer(UniqueFd(::open(lower(1).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)));
  auto scan = [&](const char* dir) {
    UniqueFd fd(::open(lo(1, dir).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    return dir_has_whiteout_files(layer, FdLayerDir(std::move(fd)));  // a missing dir: unreadable
  };
  EXPECT_FALSE(scan("plain"));
  EXPECT_FALSE(scan("opaque"));
  EXPECT_TRUE(scan("hides"));
  EXPECT_TRUE(scan("missing"));  // unreadable: keep probing
}

TEST_F(WhiteoutScan, LookupsThroughScannedDirs) {
  make_dir(lo(1, "d"));
  write_file(lo(1, "d/kept"), "k");
  write_file(lo(1, "d/hidden"), "h");
  make_dir(lo(0, "d"));
  make_whiteout_file(lo(0, "d"), "hidden");
  write_file(lo(0, "d/top"), "t");
  make_dir(lo(1, "clean"));
  write_file(lo(1, "clean/below"), "b");
  make_dir(lo(0, "clean"));
  write_file(lo(0, "clean/above"), "a");
  mount(2);
  for (int pass = 0; pass < 2; ++pass) {  // the second pass answers from the scan
    EXPECT_EQ(lookup_errno("d/kept"), 0);
    EXPECT_EQ(lookup_errno("d/hidden"), ENOENT);
    EXPECT_EQ(lookup_errno("d/absent"), ENOENT);
    EXPECT_EQ(lookup_errno("d/top"), 0);
    EXPECT_EQ(lookup_errno("clean/below"), 0);
    EXPECT_EQ(lookup_errno("clean/above"), 0);
    EXPECT_EQ(lookup_errno("clean/absent"), ENOENT);
  }
  EXPECT_EQ(ov_read("clean/below"), "b");
}

// ---------------------------------------------------------------------------------------------
// Owners through the overlay

using OverlayIds = LayerFixture;

TEST_F(OverlayIds, UidMappingShowsAndStores) {
  if (!is_root()) GTEST_SKIP() << "needs root to own test files by arbitrary ids";
  write_file(lo(0, "root-owned"), "r");
  write_file(lo(0, "unmapped"), "u");
  ASSERT_EQ(::lchown(lo(0, "unmapped").c_str(), 5, 5), 0);
  EngineConfig o;
  o.uid_mappings = {IdMapRange{0, 1000, 1}};
  o.gid_mappings = {IdMapRange{0, 1000, 1}};
  mount(1, true, o);

  struct stat st = attr("root-owned");
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1000u);
  st = attr("unmapped");
  EXPECT_EQ(st.st_uid, IdMapping::kOverflowId);
  EXPECT_EQ(st.st_gid, IdMapping::kOverflowId);

  // Created as the shown 1000: stored as 0.
  auto d = ov().mkdir(ov().root(), "d", 0755, caller(1000, 1000));
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(lstat_of(up("d")).st_uid, 0u);
  EXPECT_EQ(lstat_of(up("d")).st_gid, 0u);
  EXPECT_EQ(d->st.st_uid, 1000u);
  auto f = ov().create(node("d"), "f", 0644, O_RDWR, caller(1000, 1000));
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(lstat_of(up("d/f")).st_uid, 0u);
  EXPECT_EQ(attr("d/f").st_uid, 1000u);

  // chown to the shown 1000 stores 0.
  AttrChange ch;
  ch.uid = 1000;
  ch.gid = 1000;
  auto r = ov().setattr(node("unmapped"), ch, caller(1000, 1000));
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->st_uid, 1000u);
  EXPECT_EQ(lstat_of(up("unmapped")).st_uid, 0u);
  EXPECT_EQ(lstat_of(up("unmapped")).st_gid, 0u);
}

TEST_F(OverlayIds, SquashToRootShowsEverythingAsRoot) {
  write_file(lo(0, "f"), "x");
  if (is_root()) {
    ASSERT_EQ(::lchown(lo(0, "f").c_str(), 4242, 4343), 0);
  }
  EngineConfig o;
  o.squash_to_uid = 0;
  o.squash_to_gid = 0;
  mount(1, true, o);
  struct stat st = attr("f");
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

TEST_F(OverlayIds, OverrideStatXattrDecidesOwnerAndMode) {
  write_file(lo(0, "f"), "x", 0600);
  set_xattr(lo(0, "f"), "user.containers.override_stat", "1000:1001:04755");
  EngineConfig o;
  o.xattr_permissions = XattrPermissions::User;
  mount(1, true, o);
  struct stat st = attr("f");
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode, mode_t(S_IFREG | 04755));

  // chmod writes the record instead of the real mode.
  AttrChange ch;
  ch.mode = 0700;
  auto r = ov().setattr(node("f"), ch, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->st_mode & 07777, 0700u);
  EXPECT_EQ(r->st_uid, 1000u);
  EXPECT_EQ(lstat_of(up("f")).st_mode & 07777, 0600u);
  auto value = get_xattr(up("f"), "user.containers.override_stat");
  ASSERT_TRUE(value);
  auto parsed = parse_override_stat(*value);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->uid, 1000u);
  EXPECT_EQ(parsed->gid, 1001u);
  EXPECT_EQ(parsed->mode, 0700u);
  // The record is private: never listed.
  auto list = ov().listxattr(node("f"));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->find("override_stat"), std::string::npos);
}

}  // namespace
}  // namespace strata::fs::test
