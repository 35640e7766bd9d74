// Overlay engine, no mount: a container must not steer a copy-up out of the upper layer.
//
// The attack (found in review against the path-string engine): an image ships a set-uid
// file at a/tmp/x/ESCAPED. One process opens it for writing, so the copy-up starts; while the
// data is being copied, another process removes or renames the file's parents and puts a
// symlink `a -> /` in their place. A copy-up that ends in renameat2(work, tmp, upper,
// "a/tmp/x/ESCAPED") follows that symlink and lands the set-uid copy at /tmp/x/ESCAPED on the
// host. The engine pauses here at the hook that runs between staging and publishing the copy,
// rearranges the names through the engine itself (as the container would through the mount),
// then lets the copy-up finish and checks where it went.
#include <thread>

#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

class OverlayCopyUpEscape : public LayerFixture {
 protected:
  void SetUp() override {
    LayerFixture::SetUp();
    // Stands in for the host's /: the symlink the container plants points here.
    host_ = base_ + "/host";
    make_dir(host_ + "/tmp/x");
    write_file(lo(0, "a/tmp/x/ESCAPED"), std::string(1 << 20, 'E'), 04755);
  }

  // Opens a/tmp/x/ESCAPED for writing with `rearrange` run at the copy-up's pause point.
  Result<std::unique_ptr<OpenFile>> open_with_race(const std::function<void()>& rearrange) {
    EngineConfig cfg;
    bool ran = false;
    cfg.copy_up_staged = [&] {
      if (ran) return;  // only the file's own copy-up, once
      ran = true;
      rearrange();
    };
    mount(1, true, cfg);
    Inode* f = node("a/tmp/x/ESCAPED");
    EXPECT_NE(f, nullptr);
    auto h = ov().open(f, O_RDWR);
    EXPECT_TRUE(ran) << "the copy-up never reached its pause point";
    return h;
  }

  void expect_host_untouched() {
    EXPECT_EQ(disk_names(host_ + "/tmp/x"), std::vector<std::string>{});
    EXPECT_EQ(disk_names(host_ + "/tmp"), std::vector<std::string>{"x"});
    EXPECT_EQ(disk_names(host_), std::vector<std::string>{"tmp"});
  }

  std::string host_;
};

TEST_F(OverlayCopyUpEscape, ParentsRemovedAndReplacedBySymlink) {
  auto h = open_with_race([&] {
    Inode* root = ov().root();
    ASSERT_EQ(ov().unlink(node("a/tmp/x"), "ESCAPED"), 0);
    ASSERT_EQ(ov().rmdir(node("a/tmp"), "x"), 0);
    ASSERT_EQ(ov().rmdir(node("a"), "tmp"), 0);
    ASSERT_EQ(ov().rmdir(root, "a"), 0);
    ASSERT_TRUE(ov().symlink(root, "a", host_, caller()).ok());
  });
  expect_host_untouched();
  // The upper holds the planted symlink as a symlink and nothing below it.
  EXPECT_TRUE(S_ISLNK(lstat_of(up("a")).st_mode));
  // The open file is a file with no name, as on the kernel: it still works.
  ASSERT_TRUE(h.ok()) << h.error();
  int fd = ov().io_fd(**h);
  EXPECT_EQ(::pwrite(fd, "W", 1, 0), 1);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 1 << 20);
  expect_host_untouched();
}

// Renaming a parent away instead: renaming a directory a lower contributes to copies its
// lower-only entries in place (the file among them), so the paused copy-up finds the file
// already in the upper and drops its own copy. Nothing may land outside either way.
TEST_F(OverlayCopyUpEscape, ParentsRenamedAwayAndReplacedBySymlink) {
  auto h = open_with_race([&] {
    Inode* root = ov().root();
    ASSERT_EQ(ov().rename(root, "a", root, "moved", 0), 0);
    ASSERT_TRUE(ov().symlink(root, "a", host_, caller()).ok());
  });
  ASSERT_TRUE(h.ok()) << h.error();
  expect_host_untouched();
  // The file is at its new name, inside the upper.
  struct stat st = lstat_of(up("moved/tmp/x/ESCAPED"));
  EXPECT_EQ(st.st_size, 1 << 20);
  EXPECT_TRUE(S_ISLNK(lstat_of(up("a")).st_mode));
  ASSERT_EQ(::pwrite(ov().io_fd(**h), "W", 1, 0), 1);
  EXPECT_EQ(read_file(up("moved/tmp/x/ESCAPED")).substr(0, 2), "WE");
}

TEST_F(OverlayCopyUpEscape, UpperParentSwappedForSymlinkMidCopy) {
  // The parents already exist in the upper (an earlier write made them); the race replaces
  // the upper directory `a/tmp` itself: rename it away and plant `tmp -> host` there.
  write_file(lo(0, "a/tmp/x/other"), "o");
  auto h = open_with_race([&] {
    ASSERT_TRUE(ov().mkdir(node("a/tmp/x"), "made", 0755, caller()).ok());  // a/tmp/x now in the upper
    ASSERT_EQ(ov().rename(node("a"), "tmp", node("a"), "old", 0), 0);
    ASSERT_TRUE(ov().symlink(node("a"), "tmp", host_, caller()).ok());
  });
  ASSERT_TRUE(h.ok()) << h.error();
  expect_host_untouched();
  EXPECT_EQ(lstat_of(up("a/old/x/ESCAPED")).st_size, 1 << 20);
  EXPECT_TRUE(S_ISLNK(lstat_of(up("a/tmp")).st_mode));
}

}  // namespace
}  // namespace strata::fs::test
