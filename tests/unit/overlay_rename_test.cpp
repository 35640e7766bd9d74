// Overlay engine, no mount: rename(2) on the merged view.
#include <linux/fs.h>

#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

using OverlayRename = LayerFixture;

TEST_F(OverlayRename, UpperOnlyFile) {
  write_file(up("a"), "A");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", 0), 0);
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{"b"});
  EXPECT_EQ(read_file(up("b")), "A");
  EXPECT_EQ(lookup_errno("a"), ENOENT);
  EXPECT_EQ(ov_read("b"), "A");
}

TEST_F(OverlayRename, LowerFileCopiesUpAndLeavesWhiteout) {
  write_file(lo(0, "d1/a"), "A", 0640);
  set_xattr(lo(0, "d1/a"), "user.keep", "k");
  make_dir(lo(0, "d2"));
  mount(1);
  Inode* a = node("d1/a");
  uint64_t ino = attr("d1/a").st_ino;
  EXPECT_EQ(ov().rename(node("d1"), "a", node("d2"), "b", 0), 0);
  EXPECT_TRUE(upper_whiteout("d1/a"));
  EXPECT_EQ(read_file(up("d2/b")), "A");
  EXPECT_EQ(lstat_of(up("d2/b")).st_mode & 07777, 0640u);
  EXPECT_EQ(get_xattr(up("d2/b"), "user.keep"), std::optional<std::string>("k"));
  EXPECT_EQ(read_file(lo(0, "d1/a")), "A");
  EXPECT_EQ(lookup_errno("d1/a"), ENOENT);
  EXPECT_EQ(ov_read("d2/b"), "A");
  EXPECT_EQ(attr("d2/b").st_ino, ino);
  ASSERT_EQ(a->aliases.size(), 1u);
  EXPECT_EQ(a->aliases[0].parent, node("d2"));
  EXPECT_EQ(a->aliases[0].name, "b");
  EXPECT_EQ(names("d1"), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayRename, ReplacesExistingFile) {
  write_file(lo(0, "a"), "A");
  write_file(lo(0, "b"), "B");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", 0), 0);
  EXPECT_EQ(ov_read("b"), "A");
  EXPECT_EQ(read_file(up("b")), "A");
  EXPECT_TRUE(upper_whiteout("a"));
  EXPECT_FALSE(upper_whiteout("b"));
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "b"}));
}

TEST_F(OverlayRename, OntoWhiteoutFileName) {
  write_file(up("a"), "A");
  write_file(lo(0, "b"), "old B");
  make_whiteout_file(upper(), "b");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", 0), 0);
  EXPECT_FALSE(exists(up(".wh.b")));
  EXPECT_EQ(ov_read("b"), "A");
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "b"}));
}

TEST_F(OverlayRename, NoReplace) {
  write_file(lo(0, "a"), "A");
  write_file(lo(0, "b"), "B");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(ov_read("a"), "A");
  EXPECT_EQ(ov_read("b"), "B");
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{});
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "c", RENAME_NOREPLACE), 0);
  EXPECT_EQ(ov_read("c"), "A");
  EXPECT_EQ(lookup_errno("a"), ENOENT);
}

TEST_F(OverlayRename, ExchangeFiles) {
  write_file(lo(0, "a"), "lower A");
  write_file(up("b"), "upper B");
  make_dir(lo(0, "d"));
  mount(1);
  uint64_t ino_a = attr("a").st_ino;
  uint64_t ino_b = attr("b").st_ino;
  EXPECT_EQ(ov().rename(ov().root(), "a", node("d"), "b", RENAME_EXCHANGE), ENOENT);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", RENAME_EXCHANGE), 0);
  EXPECT_EQ(ov_read("a"), "upper B");
  EXPECT_EQ(ov_read("b"), "lower A");
  EXPECT_EQ(read_file(up("a")), "upper B");
  EXPECT_EQ(read_file(up("b")), "lower A");
  EXPECT_EQ(attr("a").st_ino, ino_b);
  EXPECT_EQ(attr("b").st_ino, ino_a);
  EXPECT_EQ(read_file(lo(0, "a")), "lower A");
}

TEST_F(OverlayRename, InvalidFlagsAndNames) {
  write_file(lo(0, "a"), "A");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", RENAME_NOREPLACE | RENAME_WHITEOUT), EINVAL);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), ".wh.b", 0), EINVAL);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), ".wh..wh..opq", 0), EINVAL);
  EXPECT_EQ(ov().rename(ov().root(), "missing", ov().root(), "b", 0), ENOENT);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "a", 0), 0);
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{});
}

TEST_F(OverlayRename, TypeMismatchesAndNonEmptyTarget) {
  write_file(lo(0, "f"), "f");
  make_dir(lo(0, "d"));
  write_file(lo(0, "full/x"), "x");
  make_dir(lo(0, "empty"));
  mount(1);
  Inode* root = ov().root();
  EXPECT_EQ(ov().rename(root, "f", root, "d", 0), EISDIR);
  EXPECT_EQ(ov().rename(root, "d", root, "f", 0), ENOTDIR);
  EXPECT_EQ(ov().rename(root, "d", root, "full", 0), ENOTEMPTY);
  EXPECT_EQ(ov_read("f"), "f");
  EXPECT_EQ(ov_read("full/x"), "x");
  // A directory may replace an empty one.
  EXPECT_EQ(ov().rename(root, "d", root, "empty", 0), 0);
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_TRUE(S_ISDIR(attr("empty").st_mode));
  EXPECT_TRUE(upper_whiteout("d"));
}

TEST_F(OverlayRename, LowerDirectoryBecomesOpaqueCopyAndOldNameWhitedOut) {
  // d merges three layers; a whiteout in the upper hides one lower entry.
  write_file(lo(1, "d/bottom"), "bottom");
  write_file(lo(1, "d/gone"), "gone");
  write_file(lo(0, "d/middle"), "middle", 0600);
  set_xattr(lo(0, "d/middle"), "user.tag", "m");
  write_file(lo(0, "d/sub/deep"), "deep");
  make_symlink("middle", lo(0, "d/sl"));
  write_file(up("d/top"), "top");
  make_whiteout_file(up("d"), "gone");
  ::chmod(lo(1, "d").c_str(), 0711);
  mount(2);
  Inode* deep = node("d/sub/deep");
  uint64_t deep_ino = attr("d/sub/deep").st_ino;

  EXPECT_EQ(ov().rename(ov().root(), "d", ov().root(), "e", 0), 0);

  // The merged view.
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_EQ(names("e"), (std::vector<std::string>{".", "..", "bottom", "middle", "sl", "sub", "top"}));
  EXPECT_EQ(ov_read("e/bottom"), "bottom");
  EXPECT_EQ(ov_read("e/middle"), "middle");
  EXPECT_EQ(ov_read("e/top"), "top");
  EXPECT_EQ(ov_read("e/sub/deep"), "deep");
  EXPECT_EQ(lookup_errno("e/gone"), ENOENT);
  EXPECT_EQ(node("e")->dir_layers, (std::vector<int>{0}));
  // A node looked up before follows the rename and reads the copy.
  ASSERT_EQ(deep->aliases.size(), 1u);
  EXPECT_EQ(deep->aliases[0].parent, node("e/sub"));
  EXPECT_EQ(deep->aliases[0].name, "deep");
  EXPECT_EQ(deep->top.load(), 0);
  auto f = ov().open(deep, O_RDONLY);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(read_fd(ov().io_fd(**f)), "deep");
  (void)deep_ino;

  // The upper: e is an opaque full copy, d a whiteout.
  EXPECT_TRUE(upper_whiteout("d"));
  EXPECT_TRUE(upper_opaque("e"));
  EXPECT_EQ(read_file(up("e/bottom")), "bottom");
  EXPECT_EQ(read_file(up("e/middle")), "middle");
  EXPECT_EQ(lstat_of(up("e/middle")).st_mode & 07777, 0600u);
  EXPECT_EQ(get_xattr(up("e/middle"), "user.tag"), std::optional<std::string>("m"));
  EXPECT_EQ(read_file(up("e/top")), "top");
  EXPECT_EQ(read_file(up("e/sub/deep")), "deep");
  EXPECT_TRUE(S_ISLNK(lstat_of(up("e/sl")).st_mode));
  EXPECT_FALSE(exists(up("e/gone")));
  EXPECT_FALSE(exists(up("e/.wh.gone")));
  // The lowers are untouched.
  EXPECT_EQ(read_file(lo(0, "d/middle")), "middle");
  EXPECT_EQ(read_file(lo(1, "d/bottom")), "bottom");
  EXPECT_EQ(disk_names(work() + "/work"), std::vector<std::string>{});
}

TEST_F(OverlayRename, LowerOnlyDirectoryIntoAnotherDirectory) {
  write_file(lo(0, "src/f"), "f");
  make_dir(lo(0, "dst"));
  mount(1);
  EXPECT_EQ(ov().rename(node("src"), "f", node("dst"), "f", 0), 0);
  EXPECT_EQ(ov().rename(ov().root(), "src", node("dst"), "moved", 0), 0);
  EXPECT_TRUE(upper_whiteout("src"));
  EXPECT_TRUE(S_ISDIR(lstat_of(up("dst/moved")).st_mode));
  EXPECT_EQ(names("dst"), (std::vector<std::string>{".", "..", "f", "moved"}));
  EXPECT_EQ(names("dst/moved"), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(ov_read("dst/f"), "f");
}

TEST_F(OverlayRename, UpperDirectoryOverLowerNameIsOpaque) {
  make_dir(lo(0, "target"));
  write_file(up("newdir/x"), "x");
  make_whiteout_file(lo(0, "target"), "ignored");  // empty in the merged view
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "newdir", ov().root(), "target", 0), 0);
  EXPECT_TRUE(upper_opaque("target"));
  EXPECT_FALSE(upper_whiteout("newdir"));
  EXPECT_FALSE(exists(up("newdir")));
  EXPECT_EQ(names("target"), (std::vector<std::string>{".", "..", "x"}));
}

TEST_F(OverlayRename, DirectoryOntoWhiteoutDevice) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(0, "old/inside"), "i");
  make_whiteout_device(up("old"));
  write_file(up("dir/x"), "x");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "dir", ov().root(), "old", 0), 0);
  EXPECT_TRUE(S_ISDIR(lstat_of(up("old")).st_mode));
  EXPECT_TRUE(upper_opaque("old"));
  EXPECT_EQ(names("old"), (std::vector<std::string>{".", "..", "x"}));
  EXPECT_EQ(lookup_errno("old/inside"), ENOENT);
}

TEST_F(OverlayRename, ExchangeOfMergedDirectoriesKeepsEachTree) {
  write_file(lo(0, "a/x"), "x");
  make_dir(up("a"));
  write_file(up("b/y"), "y");
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", RENAME_EXCHANGE), 0);
  // The lower a/x must not show through under the name "a" it no longer has.
  EXPECT_EQ(names("a"), (std::vector<std::string>{".", "..", "y"}));
  EXPECT_EQ(names("b"), (std::vector<std::string>{".", "..", "x"}));
  EXPECT_EQ(ov_read("b/x"), "x");
  EXPECT_EQ(ov().check_invariants(), "");
}

TEST_F(OverlayRename, FileIntoLowerOnlyDirectoryCopiesParents) {
  write_file(up("f"), "F");
  make_dir(lo(0, "p"), 0710);
  make_dir(lo(0, "p/q"), 0701);
  mount(1);
  EXPECT_EQ(ov().rename(ov().root(), "f", node("p/q"), "f", 0), 0);
  EXPECT_EQ(read_file(up("p/q/f")), "F");
  EXPECT_EQ(lstat_of(up("p")).st_mode & 07777, 0710u);
  EXPECT_EQ(lstat_of(up("p/q")).st_mode & 07777, 0701u);
  EXPECT_FALSE(upper_whiteout("f"));
  EXPECT_FALSE(upper_opaque("p/q"));
}

}  // namespace
}  // namespace strata::fs::test
