// Overlay engine, no mount: edge cases across operations (hardlinks renamed onto each other,
// directories copied up then emptied, renaming a merged directory back and forth).
#include <linux/fs.h>
#include "tests/unit/layer_fixture.hpp"
namespace strata::fs::test {
namespace {
using OverlayEdgeCases = LayerFixture;
TEST_F(OverlayEdgeCases, RenameOntoOwnHardlink) {
  write_file(lo(0, "a"), "A");
  ASSERT_EQ(::link(lo(0, "a").c_str(), lo(0, "b").c_str()), 0);
  mount(1);
  node("a");
  node("b");
  EXPECT_EQ(ov().rename(ov().root(), "a", ov().root(), "b", 0), 0);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", "..", "a", "b"}));
  EXPECT_EQ(ov_read("b"), "A");
  EXPECT_EQ(ov_read("a"), "A");
}
TEST_F(OverlayEdgeCases, ChmodLowerDirKeepsChildrenVisible) {
  write_file(lo(0, "d/x"), "x");
  mount(1);
  AttrChange ch;
  ch.mode = 0700;
  ASSERT_TRUE(ov().setattr(node("d"), ch, caller()).ok());
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "x"}));
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), ENOTEMPTY);
  EXPECT_EQ(ov().unlink(node("d"), "x"), 0);
  EXPECT_EQ(ov().rmdir(ov().root(), "d"), 0);
  EXPECT_EQ(names("."), (std::vector<std::string>{".", ".."}));
}
TEST_F(OverlayEdgeCases, RenameMergedDirTwice) {
  write_file(lo(0, "d/x"), "x");
  mount(1);
  ASSERT_EQ(ov().rename(ov().root(), "d", ov().root(), "e", 0), 0);
  ASSERT_EQ(ov().rename(ov().root(), "e", ov().root(), "d", 0), 0);
  EXPECT_EQ(names("d"), (std::vector<std::string>{".", "..", "x"}));
  EXPECT_TRUE(upper_opaque("d"));
  EXPECT_FALSE(exists(up("e")));
  EXPECT_EQ(ov_read("d/x"), "x");
}
TEST_F(OverlayEdgeCases, UnlinkHardlinkInLowerOnlySubdir) {
  write_file(lo(0, "p/a"), "A");
  make_dir(lo(0, "q"));
  ASSERT_EQ(::link(lo(0, "p/a").c_str(), lo(0, "q/b").c_str()), 0);
  mount(1);
  EXPECT_EQ(ov().unlink(node("p"), "a"), 0);
  EXPECT_EQ(attr("q/b").st_nlink, 1u);
  EXPECT_EQ(ov_read("q/b"), "A");
  EXPECT_EQ(lookup_errno("p/a"), ENOENT);
}
}  // namespace
}  // namespace strata::fs::test
