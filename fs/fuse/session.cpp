#include "fs/fuse/session.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "fs/fuse/context.hpp"
#include "fs/fuse/init_flags.hpp"
#include "fs/fuse/request_counts.hpp"
#include "fs/fuse/uring.hpp"

namespace strata::fs::fuse {

namespace {

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* ctx = static_cast<Context*>(userdata);
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  // Requests are read, never spliced, from /dev/fuse: the read wrapper sees each one's flags
  // (kill_suidgid.hpp), which libfuse does not pass on.
  conn->want &= ~FUSE_CAP_SPLICE_READ;
  // A reply through an io_uring queue is copied into the queue's buffer: no splicing then.
  if (!uring::prepared()) {
    want(FUSE_CAP_SPLICE_WRITE);
  } else {
    conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  }
  // Every listing carries the entries' attributes, not only its first reply (READDIRPLUS_AUTO):
  // find, du, ls -l, tar and rm -r read a whole directory before they stat or unlink what
  // is in it, so past the first reply each name cost a LOOKUP (a stat walk over a 20k-entry
  // directory: 19.9k requests, 149 now). A bare listing (ls -f) pays for the lookups instead;
  // readdirplus=auto gives the kernel's choice back.
  want(FUSE_CAP_READDIRPLUS);
  if (ctx->options->readdirplus_auto) want(FUSE_CAP_READDIRPLUS_AUTO);
  else conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_CACHE_SYMLINKS);
  // ACLs pass through as xattrs, and the kernel enforces them (needed at all in a user
  // namespace). The kernel then leaves umask and default ACLs to us: DONT_MASK hands us the
  // umask, and the backing filesystem applies default ACLs.
  if (!ctx->options->noacl) {
    want(FUSE_CAP_POSIX_ACL);
    want(FUSE_CAP_DONT_MASK);
  }
  // Re-check size and mtime when cached attributes expire, so pages of a file changed
  // through another name (hardlinks, files changed directly in the upper) are dropped.
  want(FUSE_CAP_AUTO_INVAL_DATA);
  if (ctx->options->writeback) want(FUSE_CAP_WRITEBACK_CACHE);
  else conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  ctx->writeback = (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0;
  spdlog::debug("writeback cache: {}{}", ctx->writeback ? "on" : "off",
                ctx->options->writeback_given ? "" : " (writeback= not given: on where no passthrough can be)");
  // Locks are left to the kernel: with one mount per tree, local locking is exact.
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  conn->max_write = 1 << 20;
  conn->max_readahead = 1 << 20;
  conn->time_gran = 1;
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  add_entry_ops(ops);
  add_file_ops(ops);
  add_dir_ops(ops);
  add_xattr_ops(ops);
  return ops;
}

void log_from_libfuse(fuse_log_level level, const char* fmt, va_list ap) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  size_t len = std::strlen(buf);
  while (len && buf[len - 1] == '\n') buf[--len] = '\0';
  if (level <= FUSE_LOG_ERR) spdlog::error("{}", buf);
  else if (level <= FUSE_LOG_NOTICE) spdlog::info("{}", buf);
  else spdlog::debug("{}", buf);
}

// Backing files need CAP_SYS_ADMIN in the initial user namespace: root there.
bool may_register_backing_files() {
  if (::geteuid() != 0) return false;
  std::FILE* f = std::fopen("/proc/self/uid_map", "re");
  if (!f) return false;
  unsigned long inside = 1, outside = 1, count = 0;
  bool initial = std::fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3 && inside == 0 && outside == 0 &&
                 count == 4294967295ul;
  std::fclose(f);
  return initial;
}

// The kernel turns passthrough off when the writeback cache is on.
bool wants_passthrough(const Options& opts) {
  return opts.passthrough && !opts.writeback && may_register_backing_files();
}

// writeback= not given: the cache where every write(2) would otherwise be a request (no
// passthrough) and there is something to write. Measured rootless (README, "The writeback
// cache"): big writes 1.8x faster, the other rows even; fuse-overlayfs has it on too.
Options with_default_writeback(const Options& given) {
  Options opts = given;
  if (!opts.writeback_given)
    opts.writeback = !opts.upperdir.empty() && !opts.read_only && !may_register_backing_files();
  return opts;
}

// fuse-overlayfs's defaults (as root: allow_other,suid) unless the caller chose otherwise.
std::string mount_options(const Options& opts) { return fuse_mount_options(opts, ::getuid() == 0); }

// The daemon holds directory fds (a cache) and the fds of files whose names are gone, so the
// soft limit a user session or a service starts with (1024) is too low: untarring a rootfs
// failed with EMFILE. Raise it to the hard limit, as fuse-overlayfs does, and size the
// directory fd cache to a quarter of what is allowed, so a low hard limit still leaves room.
size_t raise_open_file_limit(size_t wanted_cache) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return wanted_cache;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur == RLIM_INFINITY) return wanted_cache;
  size_t quarter = std::max<size_t>(16, size_t(lim.rlim_cur / 4));
  return std::min(wanted_cache, quarter);
}

}  // namespace

int run_filesystem(const Options& given) {
  const Options opts = with_default_writeback(given);
  auto logger = spdlog::stderr_color_mt("strata-fs");
  logger->set_pattern("strata-fs: %^%l%$: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(opts.debug ? spdlog::level::debug : spdlog::level::warn);
  fuse_set_log_func(log_from_libfuse);
  ::umask(0);  // the caller's umask is applied per request

  std::string error;
  EngineConfig config = engine_config(opts);
  config.dir_fd_cache = raise_open_file_limit(config.dir_fd_cache);
  auto overlay = Overlay::create(std::move(config), error);
  if (!overlay) {
    std::fprintf(stderr, "strata-fs: %s\n", error.c_str());
    return 1;
  }
  Context ctx;
  ctx.overlay = overlay->get();
  ctx.options = &opts;
  ctx.timeout = opts.timeout;

  std::string mopts = mount_options(opts);
  std::vector<std::string> argv_store = {"strata-fs", "-o", mopts};
  if (opts.debug) argv_store.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : argv_store) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(int(argv.size()), argv.data());

  fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &ctx);
  if (!se) {
    std::fprintf(stderr, "strata-fs: cannot start a FUSE session with options %s\n", mopts.c_str());
    return 1;
  }
  ctx.session = se;
  int status = 1;
  if (fuse_set_signal_handlers(se) != 0) {
    std::fprintf(stderr, "strata-fs: cannot install signal handlers\n");
  } else {
    if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
      bool no_dev_fuse = ::access("/dev/fuse", R_OK | W_OK) != 0;
      std::fprintf(stderr, "strata-fs: cannot mount %s%s\n", opts.mountpoint.c_str(),
                   no_dev_fuse ? ": /dev/fuse is not usable by this user (needs mode 666, or fusermount3 in PATH)"
                               : "");
    } else {
      // The kernel then asks no security.capability before each write (the backing
      // filesystem drops it when we write) and no attributes before each chown.
      std::optional<BackingFiles> backing;
      if (wants_passthrough(opts)) {
        backing.emplace(fuse_session_fd(se), ctx.overlay->read_only());
        ctx.backing = &*backing;
      }
      if (int r = add_init_flags(se, kInitHandleKillprivV2, ctx.backing != nullptr); r != 0)
        spdlog::warn("cannot wrap /dev/fuse I/O ({}): every write will cost a getxattr", std::strerror(-r));
      if (fuse_daemonize(opts.foreground ? 1 : 0) != 0) {
        std::fprintf(stderr, "strata-fs: cannot detach\n");
      } else {
        // After detaching: the rings' threads would not survive the fork.
        std::unique_ptr<uring::Transport> rings;
        if (opts.uring) {
          std::string why;
          rings = uring::prepare(se, why);
          if (!rings) spdlog::info("transport: /dev/fuse ({})", why);
        } else {
          spdlog::info("transport: /dev/fuse (uring=off)");
        }
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, opts.clone_fd ? 1 : 0);
        // Idle workers all wait on /dev/fuse and the kernel wakes the one that waited
        // longest, so every extra idle thread makes the next request land on a cold thread
        // (measured: 4 parallel readers 0.28 s with 10 threads, 0.20 s with 2 on 2 cores).
        // libfuse adds a worker only when all are busy, so one per core is enough.
        unsigned threads = opts.threads > 1 ? unsigned(opts.threads)
                                            : std::max(2u, std::thread::hardware_concurrency());
        fuse_loop_cfg_set_max_threads(cfg, threads);
        install_request_count_signal();
        int r = fuse_session_loop_mt(se, cfg);
        fuse_loop_cfg_destroy(cfg);
        if (opts.debug) write_request_counts(STDERR_FILENO);
        if (rings) rings->stop();
        // libfuse returns the number of the signal that ended the loop: a clean shutdown too.
        status = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? 0 : 1;
      }
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return status;
}

}  // namespace strata::fs::fuse
