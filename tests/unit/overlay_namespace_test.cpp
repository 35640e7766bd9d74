// Overlay engine, no mount: create, mkdir, mknod, symlink, link, unlink, rmdir.
#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

using OverlayCreate = LayerFixture;
using OverlayRemove = LayerFixture;

// ---------------------------------------------------------------------------------------------
// create / mkdir / mknod / symlink / link

TEST_F(OverlayCreate, CreateInLowerDirCopiesParentAndAppliesUmask) {
  make_dir(lo(0, "d"), 0751);
  write_file(lo(0, "d/other"), "o");
  mount(1);
  Caller c{0, 0, 022};
  auto r = ov().create(node("d"), "new", 0666, O_WRONLY, c);
  ASSERT_TRUE(r.ok()) << r.error();
  auto& [entry, file] = *r;
  EXPECT_TRUE(S_ISREG(entry.st.st_mode));
  EXPECT_EQ(entry.st.st_mode & 07777, 0644u);
  ASSERT_EQ(::pwrite(ov().io_fd(*file), "hello", 5, 0), 5);
  EXPECT_EQ(read_file(up("d/new")), "hello");
  EXPECT_EQ(lstat_of(up("d/new")).st_mode & 07777, 0644u);
  EXPECT_EQ(lstat_of(up("d")).st_mode & 07777, 0751u);
  EXPECT_FALSE(upper_opaque("d"));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "new", "other"}));
  EXPECT_EQ(ov_read("d/new"), "hello");
  EXPECT_EQ(entry.node, node("d/new"));
}

TEST_F(OverlayCreate, CreateSetsCallerAsOwner) {
  if (!is_root()) GTEST_SKIP() << "creating files for another owner needs root";
  mount(1);
  auto r = ov().create(ov().root(), "f", 0600, O_RDWR, caller(1234, 2345));
  ASSERT_TRUE(r.ok()) << r.error();
  struct stat st = lstat_of(up("f"));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(attr("f").st_uid, 1234u);
  auto d = ov().mkdir(ov().root(), "d", 0700, caller(1234, 2345));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(lstat_of(up("d")).st_uid, 1234u);
  EXPECT_EQ(lstat_of(up("d")).st_gid, 2345u);
}

TEST_F(OverlayCreate, ExistingNamesGiveEexist) {
  write_file(lo(0, "lowerfile"), "l");
  make_dir(lo(0, "lowerdir"));
  write_file(up("upperfile"), "u");
  mount(1);
  Inode* root = ov().root();
  Caller c = caller();
  for (const char* name : {"lowerfile", "lowerdir", "upperfile"}) {
    EXPECT_EQ(ov().create(root, name, 0644, O_RDWR, c).error(), EEXIST) << name;
    EXPECT_EQ(ov().mkdir(root, name, 0755, c).error(), EEXIST) << name;
    EXPECT_EQ(ov().mknod(root, name, S_IFIFO | 0644, 0, c).error(), EEXIST) << name;
    EXPECT_EQ(ov().symlink(root, name, "x", c).error(), EEXIST) << name;
    EXPECT_EQ(ov().link(node("upperfile"), root, name).error(), EEXIST) << name;
  }
  EXPECT_EQ(read_file(lo(0, "lowerfile")), "l");
  EXPECT_EQ(read_file(up("upperfile")), "u");
  EXPECT_FALSE(exists(up("lowerfile")));
}

TEST_F(OverlayCreate, MarkerNamesAreRefused) {
  mount(1);
  Caller c = caller();
  EXPECT_EQ(ov().create(ov().root(), ".wh.x", 0644, O_RDWR, c).error(), EINVAL);
  EXPECT_EQ(ov().mkdir(ov().root(), ".wh..wh..opq", 0755, c).error(), EINVAL);
  EXPECT_EQ(ov().symlink(ov().root(), ".wh.y", "t", c).error(), EINVAL);
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{});
}

TEST_F(OverlayCreate, CreateOverWhiteoutDevice) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(0, "f"), "old lower content");
  make_whiteout_device(up("f"));
  mount(1);
  EXPECT_EQ(lookup_errno("f"), ENOENT);
  auto r = ov().create(ov().root(), "f", 0644, O_RDWR, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  struct stat st = lstat_of(up("f"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(ov_read("f"), "");
  EXPECT_EQ(disk_names(work() + "/work"), std::vector<std::string>{});
}

TEST_F(OverlayCreate, CreateOverWhiteoutFileRemovesIt) {
  write_file(lo(0, "f"), "old lower content");
  make_whiteout_file(upper(), "f");
  mount(1);
  auto r = ov().create(ov().root(), "f", 0644, O_RDWR, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISREG(lstat_of(up("f")).st_mode));
  EXPECT_FALSE(exists(up(".wh.f")));
  EXPECT_EQ(ov_read("f"), "");
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "f"}));
}

TEST_F(OverlayCreate, MkdirFreshIsNotOpaque) {
  mount(1);
  auto r = ov().mkdir(ov().root(), "d", 0750, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISDIR(r->st.st_mode));
  struct stat st = lstat_of(up("d"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_FALSE(upper_opaque("d"));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayCreate, MkdirOverWhiteoutDeviceIsOpaque) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  make_dir(lo(0, "d"));
  write_file(lo(0, "d/old"), "old");
  make_whiteout_device(up("d"));
  mount(1);
  auto r = ov().mkdir(ov().root(), "d", 0755, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISDIR(lstat_of(up("d")).st_mode));
  EXPECT_TRUE(upper_opaque("d"));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(lookup_errno("d/old"), ENOENT);
  EXPECT_TRUE(r->node->opaque);
  EXPECT_EQ(r->node->dir_layers, (std::vector<int>{0}));
  EXPECT_EQ(disk_names(work() + "/work"), std::vector<std::string>{});
}

TEST_F(OverlayCreate, MkdirOverWhiteoutFileIsOpaque) {
  make_dir(lo(0, "d"));
  write_file(lo(0, "d/old"), "old");
  make_whiteout_file(upper(), "d");
  mount(1);
  auto r = ov().mkdir(ov().root(), "d", 0755, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(upper_opaque("d"));
  EXPECT_FALSE(exists(up(".wh.d")));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(lookup_errno("d/old"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "d"}));
}

TEST_F(OverlayCreate, MknodFifo) {
  make_dir(lo(0, "d"));
  mount(1);
  auto r = ov().mknod(node("d"), "fifo", S_IFIFO | 0640, 0, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISFIFO(r->st.st_mode));
  struct stat st = lstat_of(up("d/fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_TRUE(S_ISFIFO(attr("d/fifo").st_mode));
}

TEST_F(OverlayCreate, MknodCharDevice) {
  if (!is_root()) GTEST_SKIP() << "mknod of a device needs root";
  mount(1);
  auto r = ov().mknod(ov().root(), "null", S_IFCHR | 0666, makedev(1, 3), caller());
  ASSERT_TRUE(r.ok()) << r.error();
  struct stat st = lstat_of(up("null"));
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(attr("null").st_rdev, makedev(1, 3));
}

TEST_F(OverlayCreate, Symlink) {
  mount(1);
  auto r = ov().symlink(ov().root(), "sl", "../some/where", caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISLNK(r->st.st_mode));
  char buf[64] = {};
  ASSERT_GT(::readlink(up("sl").c_str(), buf, sizeof buf - 1), 0);
  EXPECT_STREQ(buf, "../some/where");
  auto t = ov().readlink(node("sl"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, "../some/where");
}

TEST_F(OverlayCreate, LinkOfLowerFileCopiesUpAndSharesInode) {
  write_file(lo(0, "f"), "content");
  make_dir(lo(0, "d"));
  mount(1);
  uint64_t ino = attr("f").st_ino;
  auto r = ov().link(node("f"), node("d"), "g");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(lstat_of(up("f")).st_ino, lstat_of(up("d/g")).st_ino);
  EXPECT_EQ(lstat_of(up("f")).st_nlink, 2u);
  EXPECT_EQ(attr("d/g").st_ino, ino);
  EXPECT_EQ(attr("f").st_ino, ino);
  EXPECT_EQ(attr("f").st_nlink, 2u);
  EXPECT_EQ(ov_read("d/g"), "content");
  EXPECT_EQ(lstat_of(lo(0, "f")).st_nlink, 1u);
}

TEST_F(OverlayCreate, LinkOverWhiteoutFile) {
  write_file(up("f"), "upper");
  write_file(lo(0, "g"), "lower g");
  make_whiteout_file(upper(), "g");
  mount(1);
  auto r = ov().link(node("f"), ov().root(), "g");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_FALSE(exists(up(".wh.g")));
  EXPECT_EQ(ov_read("g"), "upper");
}

TEST_F(OverlayCreate, LinkOfDirectoryIsRefused) {
  make_dir(lo(0, "d"));
  mount(1);
  EXPECT_EQ(ov().link(node("d"), ov().root(), "e").error(), EPERM);
  EXPECT_FALSE(exists(up("e")));
}

// ---------------------------------------------------------------------------------------------
// unlink / rmdir

TEST_F(OverlayRemove, UnlinkLowerFileLeavesWhiteout) {
  write_file(lo(0, "d/f"), "lower");
  write_file(lo(0, "d/keep"), "k");
  mount(1);
  Inode* d = node("d");
  node("d/f");
  EXPECT_EQ(ov().unlink(d, "f"), 0);
  EXPECT_TRUE(upper_whiteout("d/f"));
  EXPECT_EQ(read_file(lo(0, "d/f")), "lower");
  EXPECT_EQ(lookup_errno("d/f"), ENOENT);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "keep"}));
  EXPECT_FALSE(upper_opaque("d"));
  EXPECT_EQ(ov().unlink(d, "f"), ENOENT);
}

TEST_F(OverlayRemove, UnlinkUpperFileShadowingLowerLeavesWhiteout) {
  write_file(lo(1, "f"), "bottom");
  write_file(up("f"), "upper");
  mount(2);
  EXPECT_EQ(ov().unlink(ov().root(), "f"), 0);
  EXPECT_TRUE(upper_whiteout("f"));
  EXPECT_EQ(lookup_errno("f"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayRemove, UnlinkUpperOnlyFileLeavesNothing) {
  write_file(up("f"), "upper");
  write_file(lo(0, "other"), "o");
  mount(1);
  EXPECT_EQ(ov().unlink(ov().root(), "f"), 0);
  EXPECT_FALSE(upper_whiteout("f"));
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{});
  EXPECT_EQ(lookup_errno("f"), ENOENT);
}

TEST_F(OverlayRemove, UnlinkErrors) {
  make_dir(lo(0, "d"));
  mount(1);
  EXPECT_EQ(ov().unlink(ov().root(), "d"), EISDIR);
  EXPECT_EQ(ov().unlink(ov().root(), "missing"), ENOENT);
  EXPECT_FALSE(exists(up("d")));
}

TEST_F(OverlayRemove, UnlinkSymlinkAndFifoFromLower) {
  make_symlink("t", lo(0, "sl"));
  ASSERT_EQ(::mkfifo(lo(0, "fifo").c_str(), 0644), 0);
  mount(1);
  EXPECT_EQ(ov().unlink(ov().root(), "sl"), 0);
  EXPECT_EQ(ov().unlink(ov().root(), "fifo"), 0);
  EXPECT_TRUE(upper_whiteout("sl"));
  EXPECT_TRUE(upper_whiteout("fifo"));
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayRemove, UnlinkedInodeKeepsAnsweringFromItsFile) {
  write_file(lo(0, "f"), "xyz");
  mount(1);
  Inode* f = node("f");
  EXPECT_EQ(ov().unlink(ov().root(), "f"), 0);
  EXPECT_TRUE(f->aliases.empty());
  auto st = ov().getattr(f);
  ASSERT_TRUE(st.ok()) << std::strerror(st.error());
  EXPECT_EQ(st->st_size, 3);
  EXPECT_EQ(ov().lookup(ov().root(), "f").error(), ENOENT);
  EXPECT_EQ(ov().check_invariants(), "");
  ov().forget(f, f->nlookup);
}

TEST_F(OverlayRemove, RmdirLowerEmptyDirLeavesWhiteout) {
  make_dir(lo(0, "d"));
  mount(1);
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), 0);
  EXPECT_TRUE(upper_whiteout("d"));
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayRemove, RmdirUpperOnlyDirLeavesNothing) {
  make_dir(up("d"));
  mount(1);
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), 0);
  EXPECT_EQ(disk_names(upper()), std::vector<std::string>{});
}

TEST_F(OverlayRemove, RmdirErrors) {
  write_file(lo(0, "full/x"), "x");
  write_file(lo(0, "file"), "f");
  write_file(up("upfull/y"), "y");
  mount(1);
  EXPECT_EQ(ov().rmdir(ov().root(), "full"), ENOTEMPTY);
  EXPECT_EQ(ov().rmdir(ov().root(), "upfull"), ENOTEMPTY);
  EXPECT_EQ(ov().rmdir(ov().root(), "file"), ENOTDIR);
  EXPECT_EQ(ov().rmdir(ov().root(), "missing"), ENOENT);
  EXPECT_FALSE(exists(up("full")));
  EXPECT_FALSE(exists(up("file")));
  EXPECT_EQ(ov_read("full/x"), "x");
}

TEST_F(OverlayRemove, RmdirOfMergedDirEmptyInMergedView) {
  write_file(lo(0, "d/x"), "x");
  write_file(lo(1, "d/y"), "y");
  make_dir(up("d"));
  make_whiteout_file(up("d"), "x");
  make_whiteout_file(up("d"), "y");
  mount(2);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), 0);
  EXPECT_TRUE(upper_whiteout("d"));
  EXPECT_FALSE(S_ISDIR(lstat_of(up("d")).st_mode) && exists(up("d/.wh.x")));
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_EQ(disk_names(work() + "/work"), std::vector<std::string>{});

  // A new directory of that name is opaque: nothing below comes back.
  auto r = ov().mkdir(ov().root(), "d", 0755, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(upper_opaque("d"));
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", ".."}));
}

TEST_F(OverlayRemove, RmdirAfterUnlinkingEveryLowerEntry) {
  write_file(lo(0, "d/a"), "a");
  write_file(lo(0, "d/b"), "b");
  mount(1);
  Inode* d = node("d");
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), ENOTEMPTY);
  EXPECT_EQ(ov().unlink(d, "a"), 0);
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), ENOTEMPTY);
  EXPECT_EQ(ov().unlink(d, "b"), 0);
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), 0);
  EXPECT_TRUE(upper_whiteout("d"));
  EXPECT_EQ(lookup_errno("d"), ENOENT);
  EXPECT_TRUE(exists(lo(0, "d/a")));
}

TEST_F(OverlayRemove, UnlinkThenCreateSameName) {
  write_file(lo(0, "f"), "lower");
  mount(1);
  EXPECT_EQ(ov().unlink(ov().root(), "f"), 0);
  auto r = ov().create(ov().root(), "f", 0600, O_RDWR, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(::pwrite(ov().io_fd(*r->second), "new", 3, 0), 3);
  EXPECT_FALSE(upper_whiteout("f"));
  EXPECT_EQ(ov_read("f"), "new");
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "f"}));
}

}  // namespace
}  // namespace strata::fs::test
