// Overlay engine, no mount: lookup through layers and merged directory listings.
#include <dirent.h>

#include <map>

#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

using OverlayLookup = LayerFixture;
using OverlayListDir = LayerFixture;

// ---------------------------------------------------------------------------------------------
// lookup

TEST_F(OverlayLookup, FindsNamesInEveryLayerAndTopMostWins) {
  write_file(lo(1, "d/bottom"), "bottom");
  write_file(lo(1, "d/shared"), "from-l1");
  write_file(lo(0, "d/middle"), "middle");
  write_file(lo(0, "d/shared"), "from-l0");
  write_file(up("d/top"), "top");
  mount(2);

  EXPECT_TRUE(S_ISDIR(attr("d").st_mode));
  EXPECT_EQ(ov_read("d/bottom"), "bottom");
  EXPECT_EQ(ov_read("d/middle"), "middle");
  EXPECT_EQ(ov_read("d/top"), "top");
  EXPECT_EQ(ov_read("d/shared"), "from-l0");
  EXPECT_EQ(node("d/bottom")->top.load(), 2);
  EXPECT_EQ(node("d/middle")->top.load(), 1);
  EXPECT_EQ(node("d/top")->top.load(), 0);
  // A directory present in every layer merges all three, top-most first.
  EXPECT_EQ(node("d")->dir_layers, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(lookup_errno("d/missing"), ENOENT);
  EXPECT_EQ(lookup_errno("missing"), ENOENT);
}

TEST_F(OverlayLookup, StatShowsTheVisibleLayersAttributes) {
  write_file(lo(0, "f"), "lower-data", 0640);
  write_file(up("g"), "upper-data!", 0600);
  make_symlink("target/path", lo(0, "link"));
  mount(1);

  struct stat f = attr("f");
  EXPECT_TRUE(S_ISREG(f.st_mode));
  EXPECT_EQ(f.st_mode & 07777, 0640u);
  EXPECT_EQ(f.st_size, 10);
  EXPECT_EQ(f.st_ino, lstat_of(lo(0, "f")).st_ino);  // same device: inode kept as is
  struct stat g = attr("g");
  EXPECT_EQ(g.st_mode & 07777, 0600u);
  EXPECT_EQ(g.st_size, 11);
  EXPECT_TRUE(S_ISLNK(attr("link").st_mode));
  auto target = ov().readlink(node("link"));
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(*target, "target/path");
}

TEST_F(OverlayLookup, MergedDirectoryShowsOneLink) {
  make_dir(up("d"));
  make_dir(up("d/sub"));
  make_dir(lo(0, "d"));
  make_dir(lo(0, "only-lower"));
  make_dir(lo(0, "only-lower/sub"));
  mount(1);
  EXPECT_EQ(attr("d").st_nlink, 1u);
  EXPECT_EQ(attr("only-lower").st_nlink, 3u);  // not merged: the real count
}

TEST_F(OverlayLookup, WhiteoutDeviceHidesLowerName) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(0, "f"), "lower");
  make_dir(lo(0, "d"));
  write_file(lo(0, "d/x"), "x");
  make_whiteout_device(up("f"));
  make_whiteout_device(up("d"));
  mount(1);
  EXPECT_EQ(lookup_errno("f"), ENOENT);
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayLookup, WhiteoutFileHidesLowerName) {
  write_file(lo(0, "f"), "lower");
  make_dir(lo(0, "d"));
  make_whiteout_file(upper(), "f");
  make_whiteout_file(upper(), "d");
  mount(1);
  EXPECT_EQ(lookup_errno("f"), ENOENT);
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayLookup, WhiteoutInMiddleLowerHidesBottomLower) {
  write_file(lo(1, "a"), "bottom");
  make_whiteout_file(lower(0), "a");
  mount(2);
  EXPECT_EQ(lookup_errno("a"), ENOENT);
}

TEST_F(OverlayLookup, WhiteoutDeviceInMiddleLowerHidesBottomLower) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(1, "a"), "bottom");
  make_whiteout_device(lo(0, "a"));
  mount(2, false);
  EXPECT_EQ(lookup_errno("a"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

enum class OpaqueForm { TrustedXattr, UserXattr, FuseOverlayfsXattr, MarkerFile };

std::string form_name(const ::testing::TestParamInfo<OpaqueForm>& info) {
  switch (info.param) {
    case OpaqueForm::TrustedXattr: return "TrustedXattr";
    case OpaqueForm::UserXattr: return "UserXattr";
    case OpaqueForm::FuseOverlayfsXattr: return "FuseOverlayfsXattr";
    case OpaqueForm::MarkerFile: return "MarkerFile";
  }
  return "?";
}

class OverlayOpaque : public LayerFixture, public ::testing::WithParamInterface<OpaqueForm> {
 protected:
  void mark(const std::string& dir) {
    switch (GetParam()) {
      case OpaqueForm::TrustedXattr: set_xattr(dir, "trusted.overlay.opaque", "y"); break;
      case OpaqueForm::UserXattr: set_xattr(dir, "user.overlay.opaque", "y"); break;
      case OpaqueForm::FuseOverlayfsXattr: set_xattr(dir, "user.fuseoverlayfs.opaque", "y"); break;
      case OpaqueForm::MarkerFile: write_file(dir + "/.wh..wh..opq", "", 0000); break;
    }
  }
  void SetUp() override {
    LayerFixture::SetUp();
    if (GetParam() == OpaqueForm::TrustedXattr && !is_root()) GTEST_SKIP() << "trusted.* xattrs need root";
  }
};

TEST_P(OverlayOpaque, OpaqueUpperDirStopsDescent) {
  make_dir(lo(0, "d"));
  write_file(lo(0, "d/hidden"), "lower");
  make_dir(lo(0, "d/subdir"));
  write_file(up("d/shown"), "upper");
  mark(up("d"));
  mount(1);

  EXPECT_EQ(lookup_errno("d/hidden"), ENOENT);
  EXPECT_EQ(lookup_errno("d/subdir"), ENOENT);
  EXPECT_EQ(ov_read("d/shown"), "upper");
  EXPECT_EQ(node("d")->dir_layers, (std::vector<int>{0}));
  EXPECT_TRUE(node("d")->opaque);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "shown"}));
}

TEST_P(OverlayOpaque, OpaqueLowerDirStopsDescentBelowIt) {
  make_dir(lo(1, "d"));
  write_file(lo(1, "d/bottom"), "bottom");
  write_file(lo(0, "d/middle"), "middle");
  mark(lo(0, "d"));
  write_file(up("d/top"), "top");
  mount(2);

  EXPECT_EQ(lookup_errno("d/bottom"), ENOENT);
  EXPECT_EQ(ov_read("d/middle"), "middle");
  EXPECT_EQ(ov_read("d/top"), "top");
  EXPECT_EQ(node("d")->dir_layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "middle", "top"}));
}

INSTANTIATE_TEST_SUITE_P(AllForms, OverlayOpaque,
                         ::testing::Values(OpaqueForm::TrustedXattr, OpaqueForm::UserXattr,
                                           OpaqueForm::FuseOverlayfsXattr, OpaqueForm::MarkerFile),
                         form_name);

TEST_F(OverlayLookup, OpaqueXattrOtherThanYDoesNotStopDescent) {
  make_dir(up("d"));
  set_xattr(up("d"), "user.overlay.opaque", "n");
  write_file(lo(0, "d/lower"), "lower");
  mount(1);
  EXPECT_EQ(ov_read("d/lower"), "lower");
}

TEST_F(OverlayLookup, MarkersAreNeverLookedUp) {
  make_dir(up("d"));
  write_file(up("d/.wh..wh..opq"), "", 0000);
  make_whiteout_file(upper(), "gone");
  write_file(lo(0, "gone"), "lower");
  write_file(lo(0, ".wh.other"), "");
  mount(1);
  EXPECT_EQ(lookup_errno(".wh.gone"), ENOENT);
  EXPECT_EQ(lookup_errno(".wh.other"), ENOENT);
  EXPECT_EQ(lookup_errno("d/.wh..wh..opq"), ENOENT);
  EXPECT_EQ(lookup_errno(".wh..wh..opq"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "d"}));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayLookup, NonDirectoryHidesLowerDirectory) {
  write_file(up("d"), "i am a file");
  make_dir(lo(0, "d"));
  write_file(lo(0, "d/x"), "x");
  // A file in a middle lower hides a directory in the bottom one too.
  write_file(lo(0, "e"), "file");
  make_dir(lo(1, "e"));
  write_file(lo(1, "e/y"), "y");
  mount(2);

  struct stat d = attr("d");
  EXPECT_TRUE(S_ISREG(d.st_mode));
  EXPECT_EQ(ov_read("d"), "i am a file");
  EXPECT_NE(lookup_errno("d/x"), 0);
  EXPECT_TRUE(S_ISREG(attr("e").st_mode));
  EXPECT_NE(lookup_errno("e/y"), 0);
}

TEST_F(OverlayLookup, DirectoryOverLowerFileDoesNotMerge) {
  make_dir(up("d"));
  write_file(up("d/u"), "u");
  write_file(lo(0, "d"), "lower file");
  mount(1);
  EXPECT_TRUE(S_ISDIR(attr("d").st_mode));
  EXPECT_EQ(node("d")->dir_layers, (std::vector<int>{0}));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "u"}));
}

TEST_F(OverlayLookup, ListedNameChangedSinceTheListingIsLookedUpAgain) {
  // readdirplus looks up names from a listing taken earlier: a lower file removed or replaced
  // since must not come back (it did when only the layers below the listed one were probed).
  write_file(lo(0, "gone"), "lower");
  write_file(lo(0, "replaced"), "lower");
  mount(1);
  uint64_t listed = 0;
  auto entries = ov().list_dir(ov().root(), &listed);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(ov().unlink(ov().root(), "gone"), 0);
  auto made = ov().create(ov().root(), "new", 0644, O_WRONLY, caller());
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(::pwrite(made->second->fd.get(), "upper", 5, 0), 5);
  EXPECT_EQ(ov().rename(ov().root(), "new", ov().root(), "replaced", 0), 0);
  for (const DirEntry& e : *entries) {
    if (e.name == "gone") {
      EXPECT_EQ(ov().lookup_listed(ov().root(), e, listed).error(), ENOENT);
    }
    if (e.name == "replaced") {
      auto r = ov().lookup_listed(ov().root(), e, listed);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r->node->top.load(), 0);
      EXPECT_EQ(r->st.st_size, 5);
    }
  }
  EXPECT_EQ(ov_read("replaced"), "upper");
}

TEST_F(OverlayLookup, RepeatedLookupReturnsTheSameNode) {
  write_file(lo(0, "f"), "x");
  mount(1);
  Inode* a = node("f");
  Inode* b = node("f");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a->nlookup.load(), 2u);
  ASSERT_EQ(a->aliases.size(), 1u);
  EXPECT_EQ(a->aliases[0].parent, ov().root());
  EXPECT_EQ(a->aliases[0].name, "f");
  EXPECT_EQ(ov().check_invariants(), "");
}

// ---------------------------------------------------------------------------------------------
// list_dir

TEST_F(OverlayListDir, MergesAndDeduplicates) {
  write_file(up("d/a"), "");
  write_file(up("d/b"), "");
  write_file(lo(0, "d/b"), "");
  write_file(lo(0, "d/c"), "");
  write_file(lo(1, "d/c"), "");
  write_file(lo(1, "d/e"), "");
  make_dir(lo(1, "d/sub"));
  mount(2);

  Inode* d = node("d");
  ASSERT_NE(d, nullptr);
  auto entries = ov().list_dir(d);
  ASSERT_TRUE(entries.ok());
  std::map<std::string, DirEntry> by_name;
  for (auto& e : *entries) {
    EXPECT_TRUE(by_name.emplace(e.name, e).second) << "listed twice: " << e.name;
  }
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "a", "b", "c", "e", "sub"}));
  EXPECT_EQ(by_name["a"].layer, 0);
  EXPECT_EQ(by_name["b"].layer, 0);
  EXPECT_EQ(by_name["c"].layer, 1);
  EXPECT_EQ(by_name["e"].layer, 2);
  EXPECT_EQ(by_name["sub"].type, DT_DIR);
  EXPECT_EQ(by_name["a"].type, DT_REG);
  EXPECT_EQ(by_name["."].type, DT_DIR);
  EXPECT_EQ(by_name["."].ino, attr("d").st_ino);
  EXPECT_EQ(by_name[".."].ino, attr(".").st_ino);
  EXPECT_EQ(by_name["b"].ino, attr("d/b").st_ino);
  EXPECT_EQ(by_name["e"].ino, attr("d/e").st_ino);
}

TEST_F(OverlayListDir, DotEntriesInEmptyAndRootDirectories) {
  make_dir(lo(0, "empty"));
  mount(1);
  EXPECT_EQ(names("empty"), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "empty"}));
}

TEST_F(OverlayListDir, WhiteoutFileHidesOnlyLayersBelowItsOwn) {
  // l0: b, .wh.a   l1: a, .wh.b, c   l2: b, c
  write_file(lo(0, "b"), "b0");
  make_whiteout_file(lower(0), "a");
  write_file(lo(1, "a"), "a1");
  make_whiteout_file(lower(1), "b");
  write_file(lo(1, "c"), "c1");
  write_file(lo(2, "b"), "b2");
  write_file(lo(2, "c"), "c2");
  mount(3);
  // .wh.b in l1 does not hide b of l0 above it; .wh.a in l0 hides a of l1.
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "b", "c"}));
  EXPECT_EQ(lookup_errno("a"), ENOENT);
  EXPECT_EQ(ov_read("b"), "b0");
  EXPECT_EQ(ov_read("c"), "c1");
}

TEST_F(OverlayListDir, WhiteoutFileInUpperHidesLowerEntries) {
  write_file(lo(0, "d/x"), "x");
  write_file(lo(0, "d/y"), "y");
  write_file(lo(1, "d/z"), "z");
  make_whiteout_file(up("d"), "x");
  make_whiteout_file(up("d"), "z");
  mount(2);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "y"}));
}

TEST_F(OverlayListDir, WhiteoutDevicesHideAndNeverShow) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(0, "x"), "x");
  write_file(lo(1, "y"), "y");
  write_file(lo(1, "z"), "z");
  make_whiteout_device(up("x"));
  make_whiteout_device(lo(0, "y"));
  make_whiteout_device(up("only-whiteout"));
  mount(2);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "z"}));
}

TEST_F(OverlayListDir, NonWhiteoutCharDeviceIsListed) {
  if (!is_root()) GTEST_SKIP() << "mknod needs root";
  make_parents(up("null"));
  ASSERT_EQ(::mknod(up("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  mount(1);
  Inode* root = ov().root();
  auto entries = ov().list_dir(root);
  ASSERT_TRUE(entries.ok());
  bool seen = false;
  for (auto& e : *entries)
    if (e.name == "null") {
      seen = true;
      EXPECT_EQ(e.type, DT_CHR);
    }
  EXPECT_TRUE(seen);
  EXPECT_TRUE(S_ISCHR(attr("null").st_mode));
}

TEST_F(OverlayListDir, SingleLayerDirectoryListsEverything) {
  write_file(lo(0, "d/a"), "");
  write_file(lo(0, "d/b"), "");
  make_whiteout_file(lo(0, "d"), "c");  // a marker is never listed, even with nothing below
  mount(1, false);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "a", "b"}));
}

}  // namespace
}  // namespace strata::fs::test
