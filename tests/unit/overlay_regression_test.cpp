// Engine bugs the overlay unit tests found (now fixed): parent times after copy-up, and
// inode numbers of directories copied up by hardlink linking or a lower-dir rename.
#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

using OverlayRegression = LayerFixture;

// Kernel overlayfs restores the parent's timestamps after a copy-up (ovl_copy_up_one:
// "Restore timestamps on parent"): chmod of a/b/f must not change the mtime of a/b or a.
TEST_F(OverlayRegression, CopyUpChangesParentMtime) {
  make_dir(lo(0, "a"));
  write_file(lo(0, "a/b/f"), "x");
  struct timespec times[2] = {{1000000, 0}, {2000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, lo(0, "a/b").c_str(), times, 0), 0);
  ASSERT_EQ(::utimensat(AT_FDCWD, lo(0, "a").c_str(), times, 0), 0);
  mount(1);
  EXPECT_EQ(attr("a/b").st_mtim.tv_sec, 2000000);
  AttrChange ch;
  ch.mode = 0600;
  ASSERT_TRUE(ov().setattr(node("a/b/f"), ch, caller()).ok());
  EXPECT_EQ(attr("a/b").st_mtim.tv_sec, 2000000) << "a/b mtime changed by copy-up of a/b/f";
  EXPECT_EQ(attr("a").st_mtim.tv_sec, 2000000) << "a mtime changed by copy-up of a/b";
  EXPECT_EQ(lstat_of(up("a/b")).st_mtim.tv_sec, 2000000);
  EXPECT_EQ(lstat_of(up("a")).st_mtim.tv_sec, 2000000);
}

// A directory copied up by link_other_names (ensure_upper_path) gets no origin record: its
// st_ino changes for a fresh lookup and readdir's d_ino differs from the held node's st_ino.
TEST_F(OverlayRegression, HardlinkCopyUpChangesInoOfOtherNamesParent) {
  write_file(lo(0, "a"), "old");
  make_dir(lo(0, "dir"));
  ASSERT_EQ(::link(lo(0, "a").c_str(), lo(0, "dir/b").c_str()), 0);
  mount(1);
  uint64_t dir_ino = attr("dir").st_ino;
  auto w = ov().open(node("a"), O_WRONLY);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(exists(up("dir/b")));
  EXPECT_EQ(attr("dir").st_ino, dir_ino);  // the held node keeps its number...
  auto entries = ov().list_dir(ov().root());
  ASSERT_TRUE(entries.ok());
  for (auto& e : *entries)
    if (e.name == "dir") {
      EXPECT_EQ(e.ino, dir_ino) << "readdir d_ino of dir changed";
    }
  Inode* d = node("dir");
  ov().forget(d, d->nlookup);
  EXPECT_EQ(attr("dir").st_ino, dir_ino) << "st_ino of dir changed after a fresh lookup";
}

// rename of a lower directory copies the tree into the upper without origin records: the
// directory and everything in it show new inode numbers.
TEST_F(OverlayRegression, RenameOfLowerDirChangesInodeNumbers) {
  write_file(lo(0, "d/f"), "f");
  mount(1);
  uint64_t d_ino = attr("d").st_ino;
  uint64_t f_ino = attr("d/f").st_ino;
  ASSERT_EQ(ov().rename(ov().root(), "d", ov().root(), "e", 0), 0);
  EXPECT_EQ(attr("e").st_ino, d_ino);
  EXPECT_EQ(attr("e/f").st_ino, f_ino);
  auto entries = ov().list_dir(node("e"));
  ASSERT_TRUE(entries.ok());
  for (auto& e : *entries)
    if (e.name == "f") {
      EXPECT_EQ(e.ino, f_ino) << "readdir d_ino differs from st_ino of the same file";
    }
  Inode* f = node("e/f");
  ov().forget(f, f->nlookup);
  Inode* e = node("e");
  ov().forget(e, e->nlookup);
  EXPECT_EQ(attr("e").st_ino, d_ino) << "fresh lookup";
  EXPECT_EQ(attr("e/f").st_ino, f_ino) << "fresh lookup";
}

}  // namespace
}  // namespace strata::fs::test
