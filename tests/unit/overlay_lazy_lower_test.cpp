// The engine over a lazy lower (fs/core/blob_layer_source.hpp) stacked on a directory lower:
// names, attributes, symlinks, xattrs and data come from a blob index; its whiteout and
// opaque dir hide the directory layer below as overlayfs markers do; copy-up takes the data
// from the blob, and a hardlinked lazy file's other name follows it up. The index is written
// by hand over a plain (uncompressed) blob, so this needs no layer store.
#include <sys/stat.h>

#include <fstream>

#include "common/lazy/blob_index.hpp"
#include "fs/core/blob_layer_source.hpp"
#include "tests/unit/layer_fixture.hpp"

namespace strata::fs::test {
namespace {

class OverlayLazyLower : public LayerFixture {
 protected:
  // Writes the blob, its index and a descriptor; returns the descriptor's path.
  std::string make_lazy_layer() {
    big_ = std::string(3 << 20, '\0');
    big_.replace(100, 5, "start");
    big_.replace((2 << 20) + 7, 6, "middle");
    big_.replace(big_.size() - 3, 3, "end");
    std::string blob = "junk before" + motd_ + "junk between" + big_ + "junk after";
    lazy::BlobIndex ix;
    ix.compression = lazy::BlobCompression::Plain;
    ix.compressed_size = ix.uncompressed_size = blob.size();
    ix.digest = ix.diff_id = "sha256:" + std::string(64, '0');
    ix.points.push_back({});
    auto inode = [&](uint32_t mode, uint64_t size = 0, uint64_t offset = 0) {
      lazy::TocInode i;
      i.mode = mode;
      i.size = size;
      i.offset = offset;
      i.uid = 7;
      i.gid = 8;
      i.mtime = 1700000000;
      ix.inodes.push_back(i);
      return uint32_t(ix.inodes.size() - 1);
    };
    uint32_t root = inode(S_IFDIR | 0755), etc = inode(S_IFDIR | 0750),
             motd = inode(S_IFREG | 0640, motd_.size(), 11), link = inode(S_IFLNK | 0777, 4),
             gone = inode(S_IFCHR), opq = inode(S_IFDIR | 0755), fresh = inode(S_IFREG | 0644, 0, 0),
             big = inode(S_IFREG | 0644, big_.size(), 11 + motd_.size() + 12);
    ix.inodes[link].link = "motd";
    ix.inodes[motd].nlink = 2;
    ix.inodes[motd].xattrs.emplace_back("user.k", "v");
    ix.inodes[opq].opaque = true;
    ix.names = {{0, root, ""},  {0, etc, "etc"},      {1, motd, "motd"}, {1, motd, "hard"}, {1, link, "link"},
                {0, gone, "gone"}, {0, opq, "opq"}, {6, fresh, "new"},   {0, big, "big"}};
    ix.finish_names();
    write(base_ + "/blob", blob);
    write(base_ + "/index", ix.serialize());
    write(base_ + "/layer", std::string(kLazyLayerHeader) + "\nindex=" + base_ + "/index\nblob=" + base_ +
                                "/blob\noffset=0\n");
    return base_ + "/layer";
  }
  static void write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  void mount_lazy_over_dir() {
    write_file(lo(0, "gone"), "hidden by the lazy whiteout");
    write_file(lo(0, "opq/old"), "hidden by the lazy opaque dir");
    write_file(lo(0, "below"), "from the directory layer");
    EngineConfig opts;
    opts.lowerdirs = {make_lazy_layer(), lower(0)};
    opts.upperdir = upper();
    opts.workdir = work();
    opts.fsync = false;
    std::string error;
    auto r = Overlay::create(opts, error);
    ASSERT_TRUE(r.ok()) << error;
    ov_ = std::move(*r);
  }
  std::string motd_ = "hello lazy\n";
  std::string big_;
};

TEST_F(OverlayLazyLower, TreeAttributesAndData) {
  mount_lazy_over_dir();
  EXPECT_EQ(names(""), sorted({".", "..", "below", "big", "etc", "opq"}));
  EXPECT_EQ(names("opq"), sorted({".", "..", "new"}));
  EXPECT_EQ(names("etc"), sorted({".", "..", "hard", "link", "motd"}));
  struct stat st = attr("etc/motd");
  EXPECT_EQ(st.st_mode, mode_t(S_IFREG | 0640));
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 8u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(st.st_size, off_t(motd_.size()));
  EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
  EXPECT_EQ(attr("etc/hard").st_ino, st.st_ino);
  EXPECT_EQ(attr("etc").st_mode, mode_t(S_IFDIR | 0750));
  EXPECT_EQ(ov_read("etc/motd"), motd_);
  EXPECT_EQ(ov_read("opq/new"), "");
  EXPECT_EQ(ov_read("below"), "from the directory layer");
  EXPECT_TRUE(ov_read("big") == big_);
  auto target = ov().readlink(node("etc/link"));
  ASSERT_TRUE(target.ok());
  EXPECT_EQ(*target, "motd");
  auto x = ov().getxattr(node("etc/motd"), "user.k");
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(*x, "v");
  EXPECT_EQ(lookup_errno("gone"), ENOENT);
  EXPECT_EQ(lookup_errno("opq/old"), ENOENT);
  // The opaque marker is the overlay's own: it never shows.
  EXPECT_FALSE(ov().getxattr(node("opq"), "trusted.overlay.opaque").ok());
}

TEST_F(OverlayLazyLower, CopyUpTakesTheDataFromTheBlob) {
  mount_lazy_over_dir();
  Inode* f = node("etc/motd");
  ASSERT_NE(f, nullptr);
  AttrChange ch;
  ch.mode = 0600;
  auto st = ov().setattr(f, ch, caller());
  ASSERT_TRUE(st.ok()) << st.error();
  EXPECT_EQ(read_file(up("etc/motd")), motd_);
  EXPECT_EQ(lstat_of(up("etc/motd")).st_mode & 07777, 0600u);
  EXPECT_EQ(lstat_of(up("etc")).st_mode & 07777, 0750u);
  if (is_root()) EXPECT_EQ(lstat_of(up("etc/motd")).st_uid, 7u);
  // The other name of the hardlinked file now shows the copy.
  EXPECT_EQ(attr("etc/hard").st_mode & 07777, 0600u);
  EXPECT_EQ(ov_read("etc/hard"), motd_);
  Inode* big = node("big");
  ASSERT_NE(big, nullptr);
  ASSERT_TRUE(ov().setattr(big, ch, caller()).ok());
  EXPECT_TRUE(read_file(up("big")) == big_);
}

TEST_F(OverlayLazyLower, BadDescriptorsAreRefused) {
  make_lazy_layer();
  write(base_ + "/broken", std::string(kLazyLayerHeader) + "\nindex=" + base_ + "/blob\nblob=" + base_ + "/blob\noffset=0\n");
  write(base_ + "/short", std::string(kLazyLayerHeader) + "\nindex=" + base_ + "/index\nblob=" + base_ +
                              "/index\noffset=0\n");
  for (const char* d : {"broken", "short"}) {
    EngineConfig opts;
    opts.lowerdirs = {base_ + "/" + d};
    std::string error;
    auto r = Overlay::create(opts, error);
    EXPECT_FALSE(r.ok()) << d;
    EXPECT_NE(error.find(d == std::string("broken") ? "not a strata blob index" : "shorter than"), std::string::npos)
        << error;
  }
}

}  // namespace
}  // namespace strata::fs::test
