// NegativeMemo, and the engine's use of it: a create or rename right after a lookup that found
// nothing takes that lookup's probes only while the tree is unchanged.
#include "fs/core/negative_memo.hpp"
#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

TEST(NegativeMemo, RecallsOnlyAtTheSameVersion) {
  NegativeMemo memo;
  memo.remember(7, "name", 3, Absence{true, true, false});
  Absence a;
  ASSERT_TRUE(memo.recall(7, "name", 3, a));
  EXPECT_TRUE(a.upper_probed);
  EXPECT_TRUE(a.whiteout_device);
  EXPECT_FALSE(a.whiteout_file);
  EXPECT_FALSE(memo.recall(7, "name", 4, a));   // the tree changed since
  EXPECT_FALSE(memo.recall(8, "name", 3, a));   // another directory
  EXPECT_FALSE(memo.recall(7, "nam", 3, a));    // another name
  memo.remember(7, "name", 4, Absence{true, false, true});
  ASSERT_TRUE(memo.recall(7, "name", 4, a));    // looked up again: the newer answer
  EXPECT_FALSE(a.whiteout_device);
  EXPECT_TRUE(a.whiteout_file);
}

TEST(NegativeMemo, KeepsTheLastNames) {
  NegativeMemo memo;
  for (int i = 0; i < 20; ++i) memo.remember(1, "n" + std::to_string(i), 1, Absence{});
  Absence a;
  EXPECT_TRUE(memo.recall(1, "n19", 1, a));
  EXPECT_TRUE(memo.recall(1, "n12", 1, a));
  EXPECT_FALSE(memo.recall(1, "n0", 1, a));
}

using OverlayNegativeLookup = LayerFixture;

TEST_F(OverlayNegativeLookup, CreateAfterLookupRemovesTheWhiteoutFileItSaw) {
  write_file(lo(0, "f"), "old lower content");
  make_whiteout_file(upper(), "f");
  mount(1);
  EXPECT_EQ(lookup_errno("f"), ENOENT);
  auto r = ov().create(ov().root(), "f", 0644, O_RDWR, caller());
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(S_ISREG(lstat_of(up("f")).st_mode));
  EXPECT_FALSE(exists(up(".wh.f")));
  EXPECT_EQ(ov_read("f"), "");
}

TEST_F(OverlayNegativeLookup, ChangeSinceTheLookupIsLookedAtAgain) {
  if (!is_root()) GTEST_SKIP() << "mknod c 0 0 needs root";
  write_file(lo(0, "h"), "lower");
  make_whiteout_file(upper(), "h");                     // hidden by a .wh.h file
  mount(1);
  EXPECT_EQ(lookup_errno("h"), ENOENT);                 // absent, no whiteout device in the upper
  ASSERT_TRUE(ov().mkdir(ov().root(), "other", 0755, caller()).ok());  // the tree changes
  make_whiteout_device(up("h"));                        // beside the mount, after that change:
                                                        // a create must swap it, not EEXIST
  auto r = ov().create(ov().root(), "h", 0644, O_RDWR, caller());
  ASSERT_TRUE(r.ok()) << "the lookup's answer was used after the tree changed: " << r.error();
  EXPECT_TRUE(S_ISREG(lstat_of(up("h")).st_mode));
}

}  // namespace
}  // namespace strata::fs::test
