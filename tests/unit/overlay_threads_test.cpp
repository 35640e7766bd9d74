// Engine races under threads (1-4): getattr across ancestor renames, lookup vs mkdir that
// copies the directory up, lookup vs forget, hardlinked names opened for write at once.
#include "tests/unit/overlay_threads_util.hpp"

namespace strata::fs::test {
namespace {
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

}  // namespace
}  // namespace strata::fs::test
