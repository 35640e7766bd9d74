// Engine races under threads (5-7): files used while their name goes, a directory-fd cache
// of one entry under four threads, create/unlink/rename in one directory from four threads.
#include "tests/unit/overlay_threads_util.hpp"

namespace strata::fs::test {
namespace {
// ---------------------------------------------------------------------------------------------
// 5. A file unlinked while open (and while other threads use it).
//
// Old engine: unlink detached the node (parent = nullptr), so every later operation's
// path_of() answered ENOENT: getattr without a handle, setattr (truncate, chmod) and a
// copy-up of the open lower file all failed, although the file was still open. v2: the
// Inode keeps its backing file (orphan) and a lower one is copied up anonymously.

// What a read racing the truncation to 5 bytes may see: the content, or its first 5 bytes with
// the rest zero. Shrinking a file is not atomic against a concurrent read in the backing
// filesystem: ext4 zeroes the tail of the last block before it lowers i_size, so a read in
// between returns the old size with zeros (seen once under load: "01234" and 15 NULs).
bool plausible_read(const std::string& got, const std::string& content) {
  if (got == content.substr(0, got.size())) return true;
  return got.size() > 5 && got.substr(0, 5) == content.substr(0, 5) &&
         got.find_first_not_of('\0', 5) == std::string::npos;
}

void unlink_while_open_round(OverlayThreads& t, Inode* dir, const std::string& name, bool lower,
                             const std::string& content) {
  Overlay& ov = t.ov();
  const std::string rel = "dir/" + name;
  Inode* f = t.node(rel);
  ASSERT_TRUE(f);
  auto opened = ov.open(f, lower ? O_RDONLY : O_RDWR);
  ASSERT_TRUE(opened.ok()) << opened.error();
  OpenFile& file = **opened;
  const ino_t ino0 = ov.getattr(f)->st_ino;

  // Readers use the node and the one handle from two threads all along: before the unlink,
  // while it happens and while setattr copies the orphan up (io_fd switches fds then).
  Failures fails;
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  auto reader = [&] {
    char buf[64];
    while (!stop.load() && fails.count() < 50) {
      auto st = ov.getattr(f);
      if (!st) fails.add("getattr " + err_text(st.error()));
      else if (st->st_ino != ino0) fails.add("getattr: st_ino changed");
      auto hst = ov.getattr(f, &file);
      if (!hst) fails.add("getattr with handle " + err_text(hst.error()));
      ssize_t n = ::pread(ov.io_fd(file), buf, sizeof buf, 0);
      if (n < 0) fails.add("pread " + err_text(errno));
      else if (!plausible_read(std::string(buf, size_t(n)), content))
        fails.add("pread read " + std::string(buf, size_t(n)));
      reads.fetch_add(1);
    }
  };
  std::thread r1(reader), r2(reader);
  auto wait_reads = [&](int n) {
    int target = reads.load() + n;
    for (int i = 0; i < 20000 && reads.load() < target && fails.count() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::microseconds(100));
  };
  wait_reads(20);
  EXPECT_EQ(ov.unlink(dir, name), 0);
  EXPECT_EQ(ov.check_invariants(), "");
  wait_reads(20);
  EXPECT_EQ(t.lookup_errno(rel), ENOENT);

  auto st = ov.getattr(f);
  ASSERT_TRUE(st.ok()) << "getattr after unlink: " << err_text(st.error());
  if (!lower) {
    EXPECT_EQ(st->st_nlink, 0u);
  }
  auto hst = ov.getattr(f, &file);
  ASSERT_TRUE(hst.ok()) << err_text(hst.error());
  EXPECT_EQ(hst->st_ino, ino0);

  AttrChange chmod;
  chmod.mode = 0600;
  auto cst = ov.setattr(f, chmod, t.caller());
  ASSERT_TRUE(cst.ok()) << "chmod after unlink: " << err_text(cst.error());
  EXPECT_EQ(cst->st_mode & 07777, 0600u);
  wait_reads(20);
  AttrChange trunc;
  trunc.size = 5;
  auto tst = ov.setattr(f, trunc, t.caller());
  ASSERT_TRUE(tst.ok()) << "truncate after unlink: " << err_text(tst.error());
  EXPECT_EQ(tst->st_size, 5);
  wait_reads(20);
  stop = true;
  r1.join();
  r2.join();
  EXPECT_EQ(fails.count(), 0) << fails.summary();

  st = ov.getattr(f);
  ASSERT_TRUE(st.ok()) << err_text(st.error());
  EXPECT_EQ(st->st_size, 5);
  EXPECT_EQ(st->st_mode & 07777, 0600u);
  EXPECT_EQ(st->st_ino, ino0);
  if (!lower) {
    EXPECT_EQ(st->st_nlink, 0u);
  }
  hst = ov.getattr(f, &file);
  ASSERT_TRUE(hst.ok());
  EXPECT_EQ(hst->st_size, 5);
  EXPECT_EQ(t.read_fd(ov.io_fd(file)), content.substr(0, 5));
  // Nothing of it is left in the upper's tree (a whiteout for a lower one), nor staged in
  // the workdir; the lower file is untouched.
  if (lower) {
    EXPECT_TRUE(t.upper_whiteout(rel));
    EXPECT_EQ(t.read_file(t.lo(0, rel)), content);
  } else {
    EXPECT_FALSE(t.exists(t.up(rel)));
  }
  EXPECT_EQ(t.disk_names(t.work() + "/work"), std::vector<std::string>{});
  EXPECT_EQ(ov.check_invariants(), "");
  opened.value().reset();
  ov.forget(f, f->nlookup);
  EXPECT_EQ(ov.check_invariants(), "");
}

void unlink_while_open(OverlayThreads& t, bool lower) {
  const std::string content = "0123456789abcdefghij";
  // Several rounds, each with its own file: every one is a fresh chance for the readers to
  // meet the copy-up and the unlink.
  const int rounds = scaled(30, 10);
  for (int r = 0; r < rounds; ++r) {
    std::string rel = "dir/f" + std::to_string(r);
    if (lower) t.write_file(t.lo(0, rel), content);
    else t.write_file(t.up(rel), content);
  }
  t.write_file(t.lo(0, "dir/other"), "o");
  t.mount(1);
  Inode* dir = t.node("dir");
  ASSERT_TRUE(dir);
  for (int r = 0; r < rounds; ++r) {
    SCOPED_TRACE("round " + std::to_string(r));
    unlink_while_open_round(t, dir, "f" + std::to_string(r), lower, content);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_EQ(t.names("dir"), (std::vector<std::string>{".", "..", "other"}));
}

using OverlayThreadsUnlink = OverlayThreads;

TEST_F(OverlayThreadsUnlink, UpperFileUnlinkedWhileOpenAndInUse) { unlink_while_open(*this, false); }
TEST_F(OverlayThreadsUnlink, LowerFileUnlinkedWhileOpenAndInUse) { unlink_while_open(*this, true); }

// ---------------------------------------------------------------------------------------------
// 6. A directory fd cache of one entry under four threads working in four deep directories.
//
// Old engine: no fd cache; every operation passed "t0/<240 chars>/.../<240 chars>/f" to an
// *at call from the layer root, so past PATH_MAX (these paths are ~4,400 bytes) lookups,
// getattr, readdir and create failed with ENAMETOOLONG, and a rename of an ancestor between
// building the path and using it redirected the call. v2 walks held O_PATH fds one name at a
// time; with a capacity of 1 every walk evicts the others' fds while they are in use.

constexpr int kDeepLevels = 18;
std::string deep_component(int level) { return std::string(239, char('a' + level % 26)) + std::to_string(level % 10); }
std::string deep_path(int t) {
  std::string p = "deep" + std::to_string(t);
  for (int l = 0; l < kDeepLevels; ++l) p += "/" + deep_component(l);
  return p;
}

class OverlayThreadsDeep : public OverlayThreads {
 protected:
  // Makes lower(0)/deep<t>/... with files f0..f2 at the bottom, one component at a time (the
  // whole path is longer than PATH_MAX).
  void make_deep_lower(int t) {
    UniqueFd cur(::open(lower(0).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(cur);
    std::vector<std::string> parts{"deep" + std::to_string(t)};
    for (int l = 0; l < kDeepLevels; ++l) parts.push_back(deep_component(l));
    for (const auto& part : parts) {
      ASSERT_EQ(::mkdirat(cur.get(), part.c_str(), 0755), 0) << std::strerror(errno);
      cur = UniqueFd(::openat(cur.get(), part.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      ASSERT_TRUE(cur);
    }
    for (int k = 0; k < 3; ++k) {
      std::string name = "f" + std::to_string(k), data = "t" + std::to_string(t) + "-f" + std::to_string(k);
      UniqueFd f(::openat(cur.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      ASSERT_TRUE(f);
      ASSERT_EQ(::write(f.get(), data.data(), data.size()), ssize_t(data.size()));
    }
  }
  void TearDown() override {
    ov_.reset();
    // std::filesystem::remove_all cannot remove trees deeper than PATH_MAX: fd by fd first.
    for (const std::string& root : {lower(0), upper()}) {
      UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      for (int t = 0; fd && t < 4; ++t) (void)remove_tree(fd.get(), "deep" + std::to_string(t));
    }
    LayerFixture::TearDown();
  }
};

TEST_F(OverlayThreadsDeep, DirFdCacheOfOneUnderFourThreads) {
  for (int t = 0; t < 4; ++t) make_deep_lower(t);
  EngineConfig cfg;
  cfg.dir_fd_cache = 1;
  mount(1, true, cfg);
  ASSERT_GT(deep_path(0).size(), size_t(PATH_MAX));
  const int fds_before = count_open_fds();

  const int iters = scaled(40, 6);
  Failures fails;
  std::latch start(4);
  std::vector<std::set<std::string>> created(4);
  auto worker = [&](int t) {
    const std::string path = deep_path(t);
    std::set<std::string> want{"f0", "f1", "f2"};
    start.arrive_and_wait();
    for (int i = 0; i < iters && fails.count() < 20; ++i) {
      const std::string at = "thread " + std::to_string(t) + " iter " + std::to_string(i) + ": ";
      int err = 0;
      auto chain = lookup_path(path, &err);
      if (chain.empty()) {
        fails.add(at + "lookup of the deep dir: " + err_text(err));
        continue;
      }
      Inode* dir = chain.back().node;
      if (!S_ISDIR(chain.back().st.st_mode)) fails.add(at + "deep dir is no directory");
      if (auto st = ov().getattr(dir); !st) fails.add(at + "getattr deep dir " + err_text(st.error()));
      if (auto entries = ov().list_dir(dir); !entries) {
        fails.add(at + "list_dir " + err_text(entries.error()));
      } else if (auto got = listed_names(*entries); got != want) {
        fails.add(at + "list_dir = " + joined(got) + ", want " + joined(want));
      }
      std::string fk = "f" + std::to_string(i % 3);
      if (auto e = ov().lookup(dir, fk); !e) {
        fails.add(at + "lookup " + fk + " " + err_text(e.error()));
      } else {
        std::string data = read_through(e->node);
        if (data != "t" + std::to_string(t) + "-" + fk) fails.add(at + fk + " reads " + data);
        if (auto st = ov().getattr(e->node); !st) fails.add(at + "getattr " + fk + " " + err_text(st.error()));
        ov().forget(e->node, 1);
      }
      std::string cn = "c" + std::to_string(i);
      std::string cdata = "t" + std::to_string(t) + "-" + cn;
      if (auto c = ov().create(dir, cn, 0644, O_RDWR, caller()); !c) {
        fails.add(at + "create " + cn + " " + err_text(c.error()));
      } else {
        if (::pwrite(ov().io_fd(*c->second), cdata.data(), cdata.size(), 0) != ssize_t(cdata.size()))
          fails.add(at + "write " + cn + " " + err_text(errno));
        ov().forget(c->first.node, 1);
        want.insert(cn);
      }
      if (auto e = ov().lookup(dir, cn); !e) {
        fails.add(at + "lookup " + cn + " " + err_text(e.error()));
      } else {
        if (e->st.st_size != off_t(cdata.size())) fails.add(at + cn + " size " + std::to_string(e->st.st_size));
        ov().forget(e->node, 1);
      }
      if (size_t n = ov().cached_dir_fds(); n > 1) fails.add(at + std::to_string(n) + " cached dir fds");
      forget_all(chain);
    }
    created[size_t(t)] = want;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(fails.count(), 0) << fails.summary();
  EXPECT_EQ(ov().check_invariants(), "");
  EXPECT_LE(ov().cached_dir_fds(), 1u);
  // Every fd opened on the way was closed again; the cache may hold its one.
  EXPECT_LE(count_open_fds(), fds_before + int(ov().cached_dir_fds()));

  // A fresh walk sees what each thread made.
  for (int t = 0; t < 4; ++t) {
    auto chain = lookup_path(deep_path(t));
    ASSERT_FALSE(chain.empty());
    auto entries = ov().list_dir(chain.back().node);
    ASSERT_TRUE(entries.ok());
    EXPECT_EQ(listed_names(*entries), created[size_t(t)]) << "thread " << t;
    forget_all(chain);
  }
  EXPECT_LE(count_open_fds(), fds_before + 1);
}

// ---------------------------------------------------------------------------------------------
// 7. create / unlink / rename in one directory from four threads.
//
// Old engine: each operation resolved the name and changed the upper by path without the
// tree lock, and updated the children map afterwards under it; interleaved operations on one
// directory left nodes for names that were gone, missed whiteouts of lower names, and
// copy-ups of the shared directory raced the creates in it. v2 runs each namespace change
// (resolve, syscalls, map update) in one exclusive hold, so the end state is exactly what the
// successful operations imply.
//
// Each thread owns names p<t>_<k> (some present in the lower at the start), whose state it
// models exactly; all threads also create, unlink and rename (RENAME_NOREPLACE) shared names
// s<k>, counted per name: the final presence of s<k> is (initially present) + creates +
// renames in - unlinks - renames out.

TEST_F(OverlayThreads, CreateUnlinkRenameInOneDirectoryFromFourThreads) {
  constexpr int kThreads = 4, kPrivate = 8, kShared = 6;
  auto pname = [](int t, int k) { return "p" + std::to_string(t) + "_" + std::to_string(k); };
  auto sname = [](int k) { return "s" + std::to_string(k); };
  std::vector<std::map<std::string, std::string>> model(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int k = 0; k < kPrivate / 2; ++k) {
      std::string content = "lower-" + pname(t, k);
      write_file(lo(0, "w/" + pname(t, k)), content);
      model[size_t(t)][pname(t, k)] = content;
    }
  std::vector<int> initial(kShared, 0);
  for (int k = 0; k < 2; ++k) {
    write_file(lo(0, "w/" + sname(k)), "lower-shared");
    initial[size_t(k)] = 1;
  }
  write_file(lo(0, "w/keep"), "keep");
  mount(1);
  auto we = ov().lookup(ov().root(), "w");
  ASSERT_TRUE(we.ok());
  Inode* w = we->node;

  std::vector<std::atomic<int>> net(kShared);
  for (auto& n : net) n = 0;
  const int iters = scaled(1500, 100);
  Failures fails;
  std::latch start(kThreads);
  auto worker = [&](int t) {
    std::mt19937 rng(777u + unsigned(t));
    auto& mine = model[size_t(t)];
    int serial = 0;
    start.arrive_and_wait();
    for (int i = 0; i < iters && fails.count() < 20; ++i) {
      const std::string at = "thread " + std::to_string(t) + " op " + std::to_string(i) + ": ";
      unsigned op = rng() % 8;
      if (op < 4) {
        // A private name: the result must match the model exactly.
        std::string a = pname(t, int(rng() % kPrivate));
        bool has_a = mine.count(a) > 0;
        if (op < 2) {
          std::string content = a + "#" + std::to_string(serial++);
          auto c = ov().create(w, a, 0644, O_RDWR, caller());
          if (c.ok() != !has_a || (!c.ok() && c.error() != EEXIST)) {
            fails.add(at + "create " + a + " (present " + std::to_string(has_a) + "): " +
                      (c.ok() ? "ok" : err_text(c.error())));
          }
          if (c.ok()) {
            if (::pwrite(ov().io_fd(*c->second), content.data(), content.size(), 0) != ssize_t(content.size()))
              fails.add(at + "write " + a);
            ov().forget(c->first.node, 1);
            mine[a] = content;
          }
        } else if (op == 2) {
          Status s = ov().unlink(w, a);
          if ((s == 0) != has_a || (s != 0 && s != ENOENT))
            fails.add(at + "unlink " + a + " (present " + std::to_string(has_a) + "): " + err_text(s));
          if (s == 0) mine.erase(a);
        } else {
          std::string b = pname(t, int(rng() % kPrivate));
          if (a == b) continue;
          Status s = ov().rename(w, a, w, b, 0);
          if ((s == 0) != has_a || (s != 0 && s != ENOENT))
            fails.add(at + "rename " + a + " -> " + b + " (present " + std::to_string(has_a) + "): " + err_text(s));
          if (s == 0) {
            mine[b] = mine[a];
            mine.erase(a);
          }
        }
      } else if (op < 7) {
        // A shared name: any outcome, counted.
        int k = int(rng() % kShared);
        std::string s = sname(k);
        if (op == 4) {
          auto c = ov().create(w, s, 0644, O_RDWR, caller());
          if (c.ok()) {
            net[size_t(k)].fetch_add(1);
            ov().forget(c->first.node, 1);
          } else if (c.error() != EEXIST) {
            fails.add(at + "create " + s + ": " + err_text(c.error()));
          }
        } else if (op == 5) {
          Status st = ov().unlink(w, s);
          if (st == 0) net[size_t(k)].fetch_sub(1);
          else if (st != ENOENT) fails.add(at + "unlink " + s + ": " + err_text(st));
        } else {
          int k2 = int(rng() % kShared);
          if (k2 == k) continue;
          Status st = ov().rename(w, s, w, sname(k2), RENAME_NOREPLACE);
          if (st == 0) {
            net[size_t(k)].fetch_sub(1);
            net[size_t(k2)].fetch_add(1);
          } else if (st != ENOENT && st != EEXIST) {
            fails.add(at + "rename " + s + " -> " + sname(k2) + ": " + err_text(st));
          }
        }
      } else {
        // A listing: no name twice, and this thread's names exactly as modelled (nobody
        // else touches them).
        uint64_t listed = 0;
        auto entries = ov().list_dir(w, &listed);
        if (!entries) {
          fails.add(at + "list_dir " + err_text(entries.error()));
          continue;
        }
        std::set<std::string> got, own;
        for (const auto& e : *entries) {
          if (!got.insert(e.name).second) fails.add(at + "list_dir shows " + e.name + " twice");
          if (e.name.rfind("p" + std::to_string(t) + "_", 0) == 0) own.insert(e.name);
        }
        std::set<std::string> want;
        for (const auto& [n, c] : mine) want.insert(n);
        if (own != want) fails.add(at + "list_dir shows " + joined(own) + ", model " + joined(want));
        // And a lookup of one listed name (it may be gone by now if it is a shared one).
        if (entries->size() > 2) {
          const DirEntry& pick = (*entries)[2 + rng() % (entries->size() - 2)];
          auto e = ov().lookup_listed(w, pick, listed);
          if (e) ov().forget(e->node, 1);
          else if (e.error() != ENOENT || pick.name.rfind("p" + std::to_string(t) + "_", 0) == 0)
            fails.add(at + "lookup_listed " + pick.name + ": " + err_text(e.error()));
        }
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(fails.count(), 0) << fails.summary();
  EXPECT_EQ(ov().check_invariants(), "");

  std::set<std::string> want{"keep"};
  for (const auto& m : model)
    for (const auto& [n, c] : m) want.insert(n);
  for (int k = 0; k < kShared; ++k) {
    int presence = initial[size_t(k)] + net[size_t(k)].load();
    EXPECT_TRUE(presence == 0 || presence == 1) << sname(k) << ": successful ops imply presence " << presence;
    if (presence == 1) want.insert(sname(k));
  }
  auto entries = ov().list_dir(w);
  ASSERT_TRUE(entries.ok());
  EXPECT_EQ(listed_names(*entries), want);
  for (const auto& m : model)
    for (const auto& [n, c] : m) {
      auto e = ov().lookup(w, n);
      ASSERT_TRUE(e.ok()) << n;
      EXPECT_EQ(read_through(e->node), c) << n;
      ov().forget(e->node, 1);
    }
  EXPECT_EQ(disk_names(work() + "/work"), std::vector<std::string>{});
  EXPECT_EQ(ov().check_invariants(), "");
}

}  // namespace
}  // namespace strata::fs::test
