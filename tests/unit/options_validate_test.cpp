// strata-fs directory checks: paths made absolute, missing dirs, workdir placement, busy mountpoints.
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

// ---------------------------------------------------------------- paths and validation

class OptionsFs : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-options-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = sfs::make_absolute(tmpl);
    for (const char* d : {"l1", "l2", "u", "w", "mnt"}) stdfs::create_directory(root_ + "/" + d);
    std::ofstream(root_ + "/file") << "x";
  }
  void TearDown() override {
    if (::chdir(old_cwd_.c_str()) != 0) {
    }
    std::error_code ec;
    stdfs::permissions(root_ + "/u", stdfs::perms::owner_all, ec);
    stdfs::remove_all(root_, ec);
  }
  std::string p(const std::string& rel) const { return root_ + "/" + rel; }

  sfs::Options good() const {
    sfs::Options o;
    o.lowerdirs = {p("l1"), p("l2")};
    o.upperdir = p("u");
    o.workdir = p("w");
    o.mountpoint = p("mnt");
    return o;
  }

  std::string root_;
  std::string old_cwd_ = stdfs::current_path().string();
};

TEST_F(OptionsFs, RelativePathsMadeAbsolute) {
  ASSERT_EQ(::chdir(root_.c_str()), 0);
  auto r = parse({"-o", "lowerdir=l1:./l2,upperdir=u/,workdir=w", "overlay", "mnt"});
  ASSERT_TRUE(r.opts) << r.error;
  EXPECT_EQ(r.opts->lowerdirs, (std::vector<std::string>{p("l1"), p("l2")}));
  EXPECT_EQ(r.opts->upperdir, p("u"));
  EXPECT_EQ(r.opts->workdir, p("w"));
  EXPECT_EQ(r.opts->mountpoint, p("mnt"));
  // Still valid after the daemon chdirs to /.
  ASSERT_EQ(::chdir("/"), 0);
  EXPECT_EQ(sfs::validate_options(*r.opts), "");
}

TEST_F(OptionsFs, MakeAbsolute) {
  EXPECT_EQ(sfs::make_absolute(""), "");
  EXPECT_EQ(sfs::make_absolute(p("l1") + "/../l2/"), p("l2"));
  EXPECT_EQ(sfs::make_absolute(p("missing/x/../y/")), p("missing/y"));
  ASSERT_EQ(::chdir(root_.c_str()), 0);
  EXPECT_EQ(sfs::make_absolute("missing"), p("missing"));
  EXPECT_EQ(sfs::make_absolute("."), root_);
  // Symlinks resolve.
  stdfs::create_directory_symlink(p("l1"), p("link"));
  EXPECT_EQ(sfs::make_absolute("link"), p("l1"));
}

TEST_F(OptionsFs, ValidGood) {
  EXPECT_EQ(sfs::validate_options(good()), "");
  sfs::Options ro = good();
  ro.upperdir.clear();
  ro.workdir.clear();
  ro.read_only = true;
  EXPECT_EQ(sfs::validate_options(ro), "");
}

TEST_F(OptionsFs, ParsedThenValidated) {
  auto r = parse({"-o", "lowerdir=" + p("l1") + ",upperdir=" + p("u") + ",workdir=" + p("w"),
                  p("mnt")});
  ASSERT_TRUE(r.opts) << r.error;
  EXPECT_EQ(sfs::validate_options(*r.opts), "");
}

TEST_F(OptionsFs, MissingOrNotDirectory) {
  struct Case {
    std::string which;
    void (*mutate)(sfs::Options&, const std::string&);
  };
  const std::vector<Case> cases = {
      {"lowerdir", [](sfs::Options& o, const std::string& bad) { o.lowerdirs[1] = bad; }},
      {"upperdir", [](sfs::Options& o, const std::string& bad) { o.upperdir = bad; }},
      {"workdir", [](sfs::Options& o, const std::string& bad) { o.workdir = bad; }},
      {"mountpoint", [](sfs::Options& o, const std::string& bad) { o.mountpoint = bad; }},
  };
  for (const auto& c : cases) {
    sfs::Options o = good();
    c.mutate(o, p("nope"));
    std::string e = sfs::validate_options(o);
    EXPECT_TRUE(contains(e, c.which)) << e;
    EXPECT_TRUE(contains(e, p("nope"))) << e;
    EXPECT_TRUE(contains(e, "No such file or directory")) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);

    o = good();
    c.mutate(o, p("file"));
    e = sfs::validate_options(o);
    EXPECT_TRUE(contains(e, c.which + " " + p("file") + " is not a directory")) << e;
  }
}

TEST_F(OptionsFs, UpperAndWorkMustPair) {
  sfs::Options o = good();
  o.workdir.clear();
  EXPECT_TRUE(contains(sfs::validate_options(o), "workdir"));
  o = good();
  o.upperdir.clear();
  EXPECT_TRUE(contains(sfs::validate_options(o), "upperdir"));
  o = good();
  o.lowerdirs.clear();
  EXPECT_TRUE(contains(sfs::validate_options(o), "lowerdir"));
}

TEST_F(OptionsFs, WorkdirAndUpperdirNesting) {
  stdfs::create_directory(p("u/inner"));
  stdfs::create_directory(p("w/inner"));
  sfs::Options o = good();
  o.workdir = p("u/inner");
  std::string e = sfs::validate_options(o);
  EXPECT_TRUE(contains(e, "workdir " + p("u/inner") + " is inside upperdir " + p("u"))) << e;

  o = good();
  o.upperdir = p("w/inner");
  e = sfs::validate_options(o);
  EXPECT_TRUE(contains(e, "upperdir " + p("w/inner") + " is inside workdir " + p("w"))) << e;

  o = good();
  o.workdir = o.upperdir;
  e = sfs::validate_options(o);
  EXPECT_TRUE(contains(e, "same directory")) << e;

  // A sibling sharing a name prefix ("u" vs "u2") is not nested.
  stdfs::create_directory(p("u2"));
  o = good();
  o.workdir = p("u2");
  EXPECT_EQ(sfs::validate_options(o), "");
}

TEST_F(OptionsFs, WorkdirOnOtherFilesystem) {
  struct stat tmp {}, dev {};
  ASSERT_EQ(::stat(root_.c_str(), &tmp), 0);
  if (::stat("/dev", &dev) != 0 || dev.st_dev == tmp.st_dev ||
      ::access("/dev/shm", W_OK) != 0)
    GTEST_SKIP() << "no second writable filesystem";
  char tmpl[] = "/dev/shm/strata-options-test-XXXXXX";
  if (!::mkdtemp(tmpl)) GTEST_SKIP() << "cannot create in /dev/shm";
  struct stat shm {};
  ::stat(tmpl, &shm);
  if (shm.st_dev == tmp.st_dev) {
    stdfs::remove_all(tmpl);
    GTEST_SKIP() << "/dev/shm is on the same filesystem";
  }
  sfs::Options o = good();
  o.workdir = tmpl;
  std::string e = sfs::validate_options(o);
  stdfs::remove_all(tmpl);
  EXPECT_TRUE(contains(e, "not on the same filesystem")) << e;
  EXPECT_TRUE(contains(e, tmpl)) << e;
}

TEST_F(OptionsFs, ReadOnlyFilesystemUpperdir) {
  // Even root cannot write to a read-only mount such as /sys in most containers.
  if (::access("/sys", W_OK) == 0 || errno != EROFS) GTEST_SKIP() << "/sys is writable";
  sfs::Options o = good();
  o.upperdir = "/sys";
  o.workdir = "/sys/kernel";
  std::string e = sfs::validate_options(o);
  EXPECT_TRUE(contains(e, "upperdir /sys is not writable")) << e;
  EXPECT_TRUE(contains(e, "Read-only file system")) << e;
}

TEST_F(OptionsFs, UpperdirMustBeWritableUnlessReadOnly) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can write anywhere";
  stdfs::permissions(p("u"), stdfs::perms::owner_read | stdfs::perms::owner_exec);
  sfs::Options o = good();
  std::string e = sfs::validate_options(o);
  EXPECT_TRUE(contains(e, "upperdir " + p("u") + " is not writable")) << e;
  EXPECT_TRUE(contains(e, "Permission denied")) << e;
  o.read_only = true;
  EXPECT_EQ(sfs::validate_options(o), "");
}

TEST_F(OptionsFs, BusyMountpoint) {
  // "/" is always a mount point; /proc usually is.
  sfs::Options o = good();
  o.mountpoint = "/";
  EXPECT_EQ(sfs::validate_options(o), "mountpoint / is busy (already a mount point)");
  o.mountpoint = "/proc/.";
  std::string e = sfs::validate_options(o);
  std::ifstream mi("/proc/self/mountinfo");
  std::string all((std::istreambuf_iterator<char>(mi)), {});
  auto mps = sfs::mountinfo_mount_points(all);
  if (std::find(mps.begin(), mps.end(), "/proc") != mps.end()) {
    EXPECT_EQ(e, "mountpoint /proc/. is busy (already a mount point)");
  }
  // A plain directory is not busy.
  o = good();
  EXPECT_EQ(sfs::validate_options(o), "");
}

TEST(OptionsMountinfo, ParsesMountPointFieldWithOctalEscapes) {
  const std::string text =
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
      "36 22 0:32 / /mnt/with\\040space rw,nosuid - tmpfs tmpfs rw\n"
      "37 22 0:33 / /mnt/tab\\011and\\012nl\\134bs rw - tmpfs tmpfs rw\n"
      "38 22 0:34 /sub /mnt/plain rw - overlay overlay rw,lowerdir=/a\\040b\n"
      "\n"
      "garbage\n";
  auto mps = sfs::mountinfo_mount_points(text);
  EXPECT_EQ(mps, (std::vector<std::string>{"/", "/mnt/with space", "/mnt/tab\tand\nnl\\bs",
                                           "/mnt/plain"}));
  // No trailing newline on the last line.
  EXPECT_EQ(sfs::mountinfo_mount_points("1 2 3:4 / /x rw - a b c"),
            (std::vector<std::string>{"/x"}));
  EXPECT_TRUE(sfs::mountinfo_mount_points("").empty());
}
