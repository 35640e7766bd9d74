// Overlay engine under threads, no mount: the races of the engine-v2 issue, each driven from
// several threads straight into the engine, with Overlay::check_invariants() after the steps.
// The same tests run in strata_unit_tests_tsan (built with -fsanitize=thread, ctest label
// `tsan`), which fails on any ThreadSanitizer report.
//
// Iteration counts scale with STRATA_THREAD_TEST_SCALE (a factor, default 1; the TSan build
// defaults to STRATA_THREAD_TEST_SCALE_DEFAULT, smaller, to keep its run to a minute or two).
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/core/tree_remove.hpp"
#include "tests/unit/layer_fixture.hpp"

#ifndef STRATA_THREAD_TEST_SCALE_DEFAULT
#define STRATA_THREAD_TEST_SCALE_DEFAULT 1.0
#endif

namespace strata::fs::test {
namespace {

double thread_test_scale() {
  if (const char* e = std::getenv("STRATA_THREAD_TEST_SCALE")) {
    double v = std::strtod(e, nullptr);
    if (v > 0) return v;
  }
  return STRATA_THREAD_TEST_SCALE_DEFAULT;
}

// `n` scaled, at least `min`.
int scaled(int n, int min = 1) { return std::max(min, int(double(n) * thread_test_scale())); }

std::string err_text(int e) { return std::string(std::strerror(e)) + " (" + std::to_string(e) + ")"; }

// Failures seen by worker threads: a race that fails 100,000 times should print a few lines.
class Failures {
 public:
  void add(const std::string& what) {
    count_.fetch_add(1);
    std::lock_guard lock(mutex_);
    if (first_.size() < 8) first_.push_back(what);
  }
  int count() const { return count_.load(); }
  std::string summary() const {
    std::lock_guard lock(mutex_);
    std::string out = std::to_string(count_.load()) + " failure(s); first:";
    for (const auto& f : first_) out += "\n  " + f;
    return out;
  }

 private:
  std::atomic<int> count_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> first_;
};

int count_open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (struct dirent* de = ::readdir(d))
    if (de->d_name[0] != '.') n++;
  ::closedir(d);
  return n - 1;  // the listing's own fd
}

void atomic_max(std::atomic<uint64_t>& a, uint64_t v) {
  uint64_t cur = a.load();
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

class OverlayThreads : public LayerFixture {
 public:
  // Looks up every component of `path` from the root, keeping each lookup; empty on failure
  // (what was looked up is forgotten then), the errno in *err.
  std::vector<Entry> lookup_path(const std::string& path, int* err = nullptr) {
    std::vector<Entry> out;
    Inode* cur = ov().root();
    size_t start = 0;
    for (;;) {
      size_t slash = path.find('/', start);
      std::string part = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      auto e = ov().lookup(cur, part);
      if (!e) {
        if (err) *err = e.error();
        forget_all(out);
        return {};
      }
      out.push_back(*e);
      cur = e->node;
      if (slash == std::string::npos) return out;
      start = slash + 1;
    }
  }
  void forget_all(std::vector<Entry>& entries) {
    for (auto it = entries.rbegin(); it != entries.rend(); ++it) ov().forget(it->node, 1);
    entries.clear();
  }
  static std::set<std::string> listed_names(const std::vector<DirEntry>& entries) {
    std::set<std::string> out;
    for (const auto& e : entries)
      if (e.name != "." && e.name != "..") out.insert(e.name);
    return out;
  }
  static std::string joined(const std::set<std::string>& s) {
    std::string out;
    for (const auto& n : s) out += (out.empty() ? "" : " ") + n;
    return "{" + out + "}";
  }
  std::string read_through(Inode* n) {
    auto f = ov().open(n, O_RDONLY);
    if (!f) return "<open: " + err_text(f.error()) + ">";
    return read_fd(ov().io_fd(**f));
  }
};

// ---------------------------------------------------------------------------------------------
// 1. getattr of a looked-up a/b/c/f while a/b is renamed to a/b2 and back.
//
// Old engine: every operation rebuilt the node's path string from the parent/name chain
// (path_of, under the shared lock) and then called fstatat(layer_root, "a/b/c/f") after
// dropping it. A rename between the two made the path name a/b while the directory was at
// a/b2 (or the reverse): getattr answered ENOENT in 128,334 of 200,000 calls. The v2 engine
// reaches f through held directory fds (c's fd survives any rename of b) and renames change
// the disk and the tree in one exclusive hold.

void rename_grandparent_while_getattr(OverlayThreads& t, bool merged) {
  const std::string content = merged ? "lower f content" : "upper f content";
  if (merged) {
    // a/b exists in both layers; c and f only in the lower: the first rename copies up c and f
    // (complete_upper_tree_locked) while getattr runs.
    t.write_file(t.lo(0, "a/b/c/f"), content);
    t.write_file(t.lo(0, "a/b/lower_only"), "l");
    t.write_file(t.up("a/b/x"), "x");
  } else {
    t.write_file(t.up("a/b/c/f"), content);
  }
  Overlay& ov = t.mount(1);
  Inode* a = t.node("a");
  Inode* c = t.node("a/b/c");
  Inode* f = t.node("a/b/c/f");
  ASSERT_TRUE(a && c && f);
  auto st0 = ov.getattr(f);
  ASSERT_TRUE(st0.ok()) << st0.error();
  const ino_t ino0 = st0->st_ino;
  const uint64_t c_ino0 = ov.getattr(c)->st_ino;

  const int calls = scaled(100000, 2000);  // per reader thread; two readers
  const int min_renames = 20;
  Failures fails;
  std::atomic<bool> readers_done{false};
  std::atomic<int> renames{0};
  std::latch start(3);
  auto reader = [&](bool also_dir) {
    start.arrive_and_wait();
    for (int i = 0; (i < calls || renames.load() < min_renames) && i < calls * 50; ++i) {
      auto st = ov.getattr(f);
      if (!st) fails.add("getattr(a/b/c/f) " + err_text(st.error()) + " at call " + std::to_string(i));
      else if (st->st_ino != ino0 || st->st_size != off_t(content.size()))
        fails.add("getattr(a/b/c/f) ino " + std::to_string(st->st_ino) + " size " + std::to_string(st->st_size));
      if (also_dir && i % 4 == 0) {
        auto cst = ov.getattr(c);
        if (!cst) fails.add("getattr(a/b/c) " + err_text(cst.error()));
        else if (cst->st_ino != c_ino0) fails.add("getattr(a/b/c) st_ino changed");
      }
      if (fails.count() > 100) break;
    }
  };
  std::thread r1(reader, false), r2(reader, true);
  std::thread w([&] {
    start.arrive_and_wait();
    while (!readers_done.load() && fails.count() <= 100) {
      if (Status s = ov.rename(a, "b", a, "b2", 0); s != 0) fails.add("rename b -> b2: " + err_text(s));
      if (auto inv = ov.check_invariants(); !inv.empty()) fails.add("invariants after b -> b2: " + inv);
      if (Status s = ov.rename(a, "b2", a, "b", 0); s != 0) fails.add("rename b2 -> b: " + err_text(s));
      if (auto inv = ov.check_invariants(); !inv.empty()) fails.add("invariants after b2 -> b: " + inv);
      renames.fetch_add(1);
    }
  });
  r1.join();
  r2.join();
  readers_done = true;
  w.join();
  EXPECT_EQ(fails.count(), 0) << fails.summary();
  EXPECT_GE(renames.load(), min_renames);
  EXPECT_EQ(ov.check_invariants(), "");
  std::vector<std::string> want{".", "..", "b"};
  EXPECT_EQ(t.names("a"), want);
  EXPECT_EQ(t.ov_read("a/b/c/f"), content);
  EXPECT_EQ(t.node("a/b/c/f"), f);
  if (merged) {
    EXPECT_TRUE(t.exists(t.up("a/b/c/f")));  // copied up by the first rename
    EXPECT_TRUE(t.upper_opaque("a/b"));
    EXPECT_EQ(t.ov_read("a/b/lower_only"), "l");
  }
}

using OverlayThreadsRename = OverlayThreads;

TEST_F(OverlayThreadsRename, GetattrWhileUpperGrandparentRenamedBackAndForth) {
  rename_grandparent_while_getattr(*this, false);
}

TEST_F(OverlayThreadsRename, GetattrWhileMergedGrandparentRenamedBackAndForth) {
  rename_grandparent_while_getattr(*this, true);
}

// ---------------------------------------------------------------------------------------------
// 2. lookup of a lower-only directory d racing mkdir d/new, which copies d up.
//
// Old engine: lookup resolved d's layers (dir_layers {lower}) under the shared lock, then
// attach() took the exclusive lock and stored them. mkdir's copy-up of d ran in between and
// set dir_layers to {upper, lower}; the lookup's attach overwrote that with the stale
// {lower}, so list_dir(d) and lookup(d, "new") never looked in the upper: `new` was invisible
// in 41-87 of 2,000 runs. The v2 lookup re-resolves when the tree's version changed meanwhile.

TEST_F(OverlayThreads, LookupRacesMkdirThatCopiesTheDirectoryUp) {
  const int rounds = scaled(2000, 100);
  for (int i = 0; i < rounds; ++i) write_file(lo(0, "d" + std::to_string(i) + "/old"), "o");
  mount(1);
  Inode* root = ov().root();
  int failures = 0;
  for (int i = 0; i < rounds && failures < 10; ++i) {
    const std::string name = "d" + std::to_string(i);
    // Even rounds: d already has an Inode (the lookup re-attaches it: the old failure). Odd
    // rounds: both threads look d up first, so the two attaches race too.
    Inode* pre = nullptr;
    if (i % 2 == 0) {
      auto e = ov().lookup(root, name);
      ASSERT_TRUE(e.ok()) << name << ": " << e.error();
      pre = e->node;
    }
    std::optional<Result<Entry>> looked, made;
    Inode* mkdir_parent = pre;
    bool mkdir_parent_looked_up = false;
    std::latch start(2);
    std::thread t1([&] {
      start.arrive_and_wait();
      looked.emplace(ov().lookup(root, name));
    });
    std::thread t2([&] {
      start.arrive_and_wait();
      if (!mkdir_parent) {
        auto e = ov().lookup(root, name);
        if (!e) {
          made.emplace(Errno{e.error()});
          return;
        }
        mkdir_parent = e->node;
        mkdir_parent_looked_up = true;
      }
      made.emplace(ov().mkdir(mkdir_parent, "new", 0755, caller()));
    });
    t1.join();
    t2.join();
    ASSERT_TRUE(looked->ok()) << name << ": lookup " << err_text(looked->error());
    ASSERT_TRUE(made->ok()) << name << ": mkdir " << err_text(made->error());
    Inode* d = (*looked)->node;
    EXPECT_EQ(d, mkdir_parent) << name << ": two Inodes for one directory";

    bool ok = true;
    auto entries = ov().list_dir(d);
    if (!entries.ok()) {
      ADD_FAILURE() << name << ": list_dir " << err_text(entries.error());
      ok = false;
    } else if (auto got = listed_names(*entries); got != std::set<std::string>{"new", "old"}) {
      ADD_FAILURE() << "round " << i << ": list_dir(" << name << ") = " << joined(got) << ", want {new old}";
      ok = false;
    }
    auto n = ov().lookup(d, "new");
    if (!n.ok()) {
      ADD_FAILURE() << "round " << i << ": lookup(" << name << ", new): " << err_text(n.error());
      ok = false;
    } else {
      EXPECT_TRUE(S_ISDIR(n->st.st_mode));
      EXPECT_EQ(n->node, (*made)->node);
      ov().forget(n->node, 1);
    }
    if (auto inv = ov().check_invariants(); !inv.empty()) {
      ADD_FAILURE() << "round " << i << ": invariants: " << inv;
      ok = false;
    }
    if (!ok) failures++;
    ov().forget((*made)->node, 1);
    ov().forget(d, 1);
    if (mkdir_parent_looked_up) ov().forget(mkdir_parent, 1);
    if (pre) ov().forget(pre, 1);
  }
  EXPECT_EQ(ov().check_invariants(), "");
  EXPECT_TRUE(exists(up("d0/new")));
}

// ---------------------------------------------------------------------------------------------
// 3. lookup vs forget of the same names from several threads.
//
// Old engine: lookup attached and counted the node under the exclusive lock but built the
// reply (present(), xattr reads by path) after dropping it, from a path it had computed
// before; forget of the parent chain by another thread in between freed nodes that
// release_if_unused walked through `parent` pointers, and the table and the parents'
// children maps could disagree. Here: no crash, no use after free (TSan / the invariants),
// and once every lookup is forgotten every Inode is gone: a fresh lookup makes new ones.

TEST_F(OverlayThreads, LookupAndForgetOfTheSameNames) {
  const std::vector<std::string> paths{"d",      "d/f0", "d/f1", "d/f2", "d/u0", "d/u1",
                                       "d/s",    "d/s/g", "d/s/h", "top",  "lowtop"};
  for (const char* f : {"d/f0", "d/f1", "d/f2", "d/s/g", "lowtop"}) write_file(lo(0, f), f);
  for (const char* f : {"d/u0", "d/u1", "d/s/h", "top"}) write_file(up(f), f);
  mount(1);

  std::atomic<uint64_t> max_id{0};
  std::map<std::string, ino_t> ino;  // what each path shows: st_ino must not change
  for (const auto& p : paths) {
    auto chain = lookup_path(p);
    ASSERT_FALSE(chain.empty()) << p;
    for (auto& e : chain) atomic_max(max_id, e.node->id);
    ino[p] = chain.back().st.st_ino;
    forget_all(chain);
  }

  const int iters = scaled(4000, 200);
  Failures fails;
  std::latch start(4);
  auto worker = [&](int tid) {
    std::mt19937 rng(1234u + unsigned(tid));
    start.arrive_and_wait();
    for (int i = 0; i < iters && fails.count() < 50; ++i) {
      const std::string& p = paths[rng() % paths.size()];
      int err = 0;
      auto chain = lookup_path(p, &err);
      if (chain.empty()) {
        fails.add("lookup " + p + ": " + err_text(err));
        continue;
      }
      for (auto& e : chain) atomic_max(max_id, e.node->id);
      Inode* leaf = chain.back().node;
      if (chain.back().st.st_ino != ino.at(p)) fails.add("lookup " + p + ": st_ino changed");
      auto st = ov().getattr(leaf);
      if (!st) fails.add("getattr " + p + ": " + err_text(st.error()));
      else if (st->st_ino != ino.at(p)) fails.add("getattr " + p + ": st_ino changed");
      if (leaf->is_dir() && rng() % 4 == 0) {
        // readdirplus: lookup_listed of an entry (it may forget and look up again).
        uint64_t listed = 0;
        auto entries = ov().list_dir(leaf, &listed);
        if (!entries) {
          fails.add("list_dir " + p + ": " + err_text(entries.error()));
        } else if (entries->size() > 2) {
          const DirEntry& pick = (*entries)[2 + rng() % (entries->size() - 2)];
          auto e = ov().lookup_listed(leaf, pick, listed);
          if (!e) fails.add("lookup_listed " + p + "/" + pick.name + ": " + err_text(e.error()));
          else {
            atomic_max(max_id, e->node->id);
            ov().forget(e->node, 1);
          }
        }
      }
      // Forget in any order: a parent may go to zero before its child does.
      std::shuffle(chain.begin(), chain.end(), rng);
      for (auto& e : chain) ov().forget(e.node, 1);
      if (i % 64 == 0)
        if (auto inv = ov().check_invariants(); !inv.empty()) fails.add("invariants: " + inv);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();
  EXPECT_EQ(fails.count(), 0) << fails.summary();
  EXPECT_EQ(ov().check_invariants(), "");

  // Everything was forgotten: no Inode may be left over, so every fresh lookup makes a new one
  // (ids are never reused) and shows the same file.
  const uint64_t seen = max_id.load();
  for (const auto& p : paths) {
    auto chain = lookup_path(p);
    ASSERT_FALSE(chain.empty()) << p;
    EXPECT_GT(chain.back().node->id, seen) << p << ": its Inode outlived all its lookups";
    EXPECT_EQ(chain.back().st.st_ino, ino[p]) << p;
    forget_all(chain);
  }
  EXPECT_EQ(ov().check_invariants(), "");
}

// ---------------------------------------------------------------------------------------------
// 4. Two hardlinked names of a lower file opened for write at once.
//
// Old engine: one Node per name, each with its own mutex, so open(a) and open(b) copied up
// independently: each staged its own copy; the second rename into the upper failed EEXIST
// (ignored) or link_other_names found the name taken, leaving a and b as two upper files
// (nlink 1 each) or writes through one name not seen through the other. v2: one Inode per
// backing file, one copy_mutex: exactly one upper inode, both names linked to it.

TEST_F(OverlayThreads, HardlinkedNamesOpenedForWriteAtOnce) {
  const int rounds = scaled(300, 20);
  auto a_name = [](int i) { return "h" + std::to_string(i) + "a"; };
  // Odd rounds put the second name in a subdirectory (link_other_names walks to it).
  auto b_path = [](int i) { return (i % 2 ? "sub/h" : "h") + std::to_string(i) + "b"; };
  make_dir(lo(0, "sub"));
  for (int i = 0; i < rounds; ++i) {
    write_file(lo(0, a_name(i)), "content-" + std::to_string(i) + "-0123456789");
    ASSERT_EQ(::link(lo(0, a_name(i)).c_str(), lo(0, b_path(i)).c_str()), 0);
  }
  mount(1);
  Inode* root = ov().root();
  auto sub_e = ov().lookup(root, "sub");
  ASSERT_TRUE(sub_e.ok());
  Inode* sub = sub_e->node;

  for (int i = 0; i < rounds; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    const std::string an = a_name(i), bp = b_path(i);
    Inode* b_parent = i % 2 ? sub : root;
    const std::string bn = bp.substr(bp.rfind('/') + 1);
    const std::string content = "content-" + std::to_string(i) + "-0123456789";
    // Rounds 0, 1 mod 4: looked up before; 2, 3: each thread looks its name up, then opens.
    bool pre = i % 4 < 2;
    Inode* na = nullptr;
    Inode* nb = nullptr;
    if (pre) {
      auto ea = ov().lookup(root, an);
      auto eb = ov().lookup(b_parent, bn);
      ASSERT_TRUE(ea.ok() && eb.ok());
      na = ea->node;
      nb = eb->node;
    }
    std::optional<Result<std::unique_ptr<OpenFile>>> fa, fb;
    std::latch start(2);
    auto opener = [&](Inode* parent, const std::string& name, Inode*& n,
                      std::optional<Result<std::unique_ptr<OpenFile>>>& out) {
      start.arrive_and_wait();
      if (!n) {
        auto e = ov().lookup(parent, name);
        if (!e) {
          out.emplace(Errno{e.error()});
          return;
        }
        n = e->node;
      }
      out.emplace(ov().open(n, O_WRONLY));
    };
    std::thread ta(opener, root, an, std::ref(na), std::ref(fa));
    std::thread tb(opener, b_parent, bn, std::ref(nb), std::ref(fb));
    ta.join();
    tb.join();
    ASSERT_TRUE(fa->ok()) << "open " << an << ": " << err_text(fa->error());
    ASSERT_TRUE(fb->ok()) << "open " << bp << ": " << err_text(fb->error());
    EXPECT_EQ(na, nb) << "two Inodes for one file";

    struct stat ua = lstat_of(up(an)), ub = lstat_of(up(bp));
    EXPECT_TRUE(S_ISREG(ua.st_mode) && S_ISREG(ub.st_mode));
    EXPECT_EQ(ua.st_ino, ub.st_ino) << "two upper inodes";
    EXPECT_EQ(ua.st_nlink, 2u);
    EXPECT_EQ(read_file(up(an)), content);

    // A write through either handle shows through the other name.
    ASSERT_EQ(::pwrite(ov().io_fd(***fa), "AA", 2, 0), 2);
    EXPECT_EQ(read_through(nb), "AA" + content.substr(2));
    ASSERT_EQ(::pwrite(ov().io_fd(***fb), "BB", 2, 2), 2);
    EXPECT_EQ(read_through(na), "AABB" + content.substr(4));
    auto st = ov().getattr(na);
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->st_nlink, 2u);
    EXPECT_EQ(ov().check_invariants(), "");
    fa->value().reset();
    fb->value().reset();
    if (na) ov().forget(na, 1);
    if (nb) ov().forget(nb, 1);
    if (HasFailure()) break;
  }
  EXPECT_EQ(ov().check_invariants(), "");
}

// ---------------------------------------------------------------------------------------------
// 5. A file unlinked while open (and while other threads use it).
//
// Old engine: unlink detached the node (parent = nullptr), so every later operation's
// path_of() answered ENOENT: getattr without a handle, setattr (truncate, chmod) and a
// copy-up of the open lower file all failed, although the file was still open. v2: the
// Inode keeps its backing file (orphan) and a lower one is copied up anonymously.

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
      else if (std::string(buf, size_t(n)) != content.substr(0, size_t(n)))
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
