#include "fs/fuse/uring.hpp"

#include <liburing.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "fs/fuse/kill_suidgid.hpp"
#include "fs/fuse/request_counts.hpp"

namespace strata::fs::fuse::uring {

namespace {

// <linux/fuse.h> of kernels 6.14+ (Debian 12's headers predate them).
constexpr uint32_t kCmdRegister = 1;        // FUSE_IO_URING_CMD_REGISTER
constexpr uint32_t kCmdCommitAndFetch = 2;  // FUSE_IO_URING_CMD_COMMIT_AND_FETCH
struct EntInOut {                           // struct fuse_uring_ent_in_out
  uint64_t flags;
  uint64_t commit_id;  // the request's unique, echoed in the commit
  uint32_t payload_sz; // bytes of the payload buffer in use, either way
  uint32_t padding;
  uint64_t reserved;
};
struct ReqHeader {  // struct fuse_uring_req_header: iov[0] of an entry
  char in_out[128]; // fuse_in_header of a request, fuse_out_header of its reply
  char op_in[128];  // the request's first argument (the per-opcode struct), if any
  EntInOut ent;
};
struct CmdReq {  // struct fuse_uring_cmd_req, in the 80-byte command area of a 128-byte SQE
  uint64_t flags;
  uint64_t commit_id;
  uint16_t qid;
  uint8_t padding[6];
};
static_assert(sizeof(ReqHeader) == 288 && sizeof(CmdReq) == 24);

const char kSwitch[] = "/sys/module/fuse/parameters/enable_uring";

// Requests in flight per CPU. One thread serves a ring, so more entries do not add
// parallelism; they let the kernel hand over a burst (readahead, writeback) in one wake-up.
constexpr size_t kDepth = 8;
// Room before the payload for fuse_in_header and the per-opcode struct: the request is laid
// out there as libfuse reads it from /dev/fuse, with no copy of the payload.
constexpr size_t kFront = 4096;
constexpr size_t kPage = 4096;
constexpr uint64_t kStopTag = ~uint64_t(0);

struct Queue;

struct Entry {
  Queue* queue = nullptr;
  ReqHeader* header = nullptr;  // page-aligned
  char* buffer = nullptr;       // kFront + payload size, page-aligned
  iovec iov[2] = {};
  uint64_t unique = 0;
  uint32_t last_cmd = kCmdRegister;
  bool replied = false;
  char* payload() const { return buffer + kFront; }
};

struct Queue {
  unsigned qid = 0;
  io_uring ring{};
  bool ring_open = false;
  int stop_fd = -1;
  std::thread thread;
  std::vector<Entry> entries;
};

// The entry the calling ring thread is serving (reply_to_ring's target).
thread_local Entry* t_entry = nullptr;

}  // namespace

struct Transport::Impl {
  fuse_session* se = nullptr;
  int dev_fd = -1;
  size_t payload_size = 0;
  std::vector<std::unique_ptr<Queue>> queues;

  enum class Phase { Preparing, Waiting, Go, NoGo };
  std::mutex mutex;
  std::condition_variable changed;
  Phase phase = Phase::Preparing;
  size_t started = 0, failed = 0;
  std::string first_error;
  bool stopped = false;
  std::mutex join_mutex;  // init_answered() and stop() may both join, from different threads

  ~Impl() {
    for (auto& q : queues)
      if (q->stop_fd >= 0) ::close(q->stop_fd);
  }
  void run(Queue& q);
  bool set_up(Queue& q, std::string& error);
  bool serve_ring(Queue& q);
  void serve(Queue& q, Entry& e);
  void submit(Queue& q, Entry& e);
  void join();
};

namespace {

std::atomic<Transport::Impl*> g_impl{nullptr};

void free_buffers(Queue& q) {
  for (Entry& e : q.entries) {
    std::free(e.header);
    std::free(e.buffer);
    e.header = nullptr;
    e.buffer = nullptr;
  }
}

void close_ring(Queue& q) {
  if (q.ring_open) io_uring_queue_exit(&q.ring);
  q.ring_open = false;
  free_buffers(q);  // stop_fd stays open for stop(); ~Impl closes it
}

// A ring thread runs on its CPU, where the kernel queues the requests of that CPU's callers.
void pin_to_cpu(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int r = pthread_setaffinity_np(pthread_self(), sizeof set, &set); r != 0)
    spdlog::debug("io_uring queue {}: cannot pin to CPU {} ({}): served from any CPU", cpu, cpu, std::strerror(r));
}

// The kernel has one queue per possible CPU (num_possible_cpus()) and serves no request until
// each has an entry: count the possible mask ("0-1", "0-3,8-11"), as it does.
size_t possible_cpus() {
  std::ifstream f("/sys/devices/system/cpu/possible");
  std::string mask;
  size_t n = 0;
  if (f >> mask) {
    size_t at = 0;
    while (at < mask.size()) {
      size_t end = mask.find(',', at);
      std::string range = mask.substr(at, end == std::string::npos ? std::string::npos : end - at);
      unsigned lo = 0, hi = 0;
      if (std::sscanf(range.c_str(), "%u-%u", &lo, &hi) == 2 && hi >= lo) n += hi - lo + 1;
      else if (std::sscanf(range.c_str(), "%u", &lo) == 1) n += 1;
      if (end == std::string::npos) break;
      at = end + 1;
    }
  }
  return n ? n : size_t(std::max(1, get_nprocs_conf()));
}

void stop_on_error(const char* what, int err) {
  spdlog::error("io_uring transport: {}: {}; stopping the filesystem", what, std::strerror(err));
  // The libfuse loop sleeps in read(/dev/fuse); its signal handler ends it and unmounts.
  ::kill(::getpid(), SIGTERM);
}

}  // namespace

std::string kernel_switch_off_reason() {
  std::ifstream f(kSwitch);
  std::string v;
  if (!f || !(f >> v)) return "this kernel has no FUSE over io_uring (no " + std::string(kSwitch) + ")";
  if (v != "Y" && v != "1") return std::string("the kernel switch is off (") + kSwitch + " is " + v + ")";
  return "";
}

bool Transport::Impl::set_up(Queue& q, std::string& error) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;  // the command needs the 80-byte area
  p.cq_entries = 2 * (kDepth + 1);
  if (int r = io_uring_queue_init_params(kDepth + 1, &q.ring, &p); r < 0) {
    error = std::string("io_uring_setup: ") + std::strerror(-r);
    return false;
  }
  q.ring_open = true;
  q.stop_fd = ::eventfd(0, EFD_CLOEXEC);
  if (q.stop_fd < 0) {
    error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  q.entries.resize(kDepth);
  for (Entry& e : q.entries) e.queue = &q;
  return true;
}

void Transport::Impl::submit(Queue& q, Entry& e) {
  io_uring_sqe* sqe = io_uring_get_sqe(&q.ring);
  if (!sqe) {  // every entry holds at most one SQE and the ring has one more slot: unreachable
    io_uring_submit(&q.ring);
    sqe = io_uring_get_sqe(&q.ring);
    if (!sqe) return stop_on_error("no free submission slot", EBUSY);
  }
  std::memset(sqe, 0, 2 * sizeof *sqe);
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = dev_fd;
  sqe->cmd_op = e.last_cmd;
  sqe->user_data = reinterpret_cast<uintptr_t>(&e);
  CmdReq req{};
  req.qid = uint16_t(q.qid);
  if (e.last_cmd == kCmdRegister) {
    sqe->addr = reinterpret_cast<uintptr_t>(e.iov);
    sqe->len = 2;
  } else {
    req.commit_id = e.unique;
  }
  std::memcpy(sqe->cmd, &req, sizeof req);
}

// Lays the request out as it comes from /dev/fuse (in header, per-opcode struct, payload),
// hands it to libfuse, and queues the commit of the reply the handler staged.
void Transport::Impl::serve(Queue& q, Entry& e) {
  fuse_in_header in;
  std::memcpy(&in, e.header->in_out, sizeof in);
  EntInOut io;
  std::memcpy(&io, &e.header->ent, sizeof io);
  e.unique = io.commit_id;
  e.replied = false;
  size_t payload = io.payload_sz;
  size_t op = in.len >= sizeof in + payload ? in.len - sizeof in - payload : SIZE_MAX;
  if (op <= sizeof e.header->op_in && payload <= payload_size) {
    char* start = e.payload() - op - sizeof in;
    std::memcpy(start + sizeof in, e.header->op_in, op);
    std::memcpy(start, &in, sizeof in);
    fuse_buf buf{};
    buf.size = in.len;
    buf.mem = start;
    t_entry = &e;
    note_request(start, in.len);  // its kill flags (kill_suidgid.hpp), which libfuse drops
    count_request(start, in.len);
    fuse_session_process_buf(se, &buf);
    t_entry = nullptr;
  } else {
    spdlog::warn("io_uring: malformed request (opcode {}, length {}, payload {})", in.opcode, in.len, payload);
  }
  if (!e.replied) {  // every request on a ring is answered, or its caller waits forever
    fuse_out_header out{sizeof(fuse_out_header), -EIO, e.unique};
    std::memcpy(e.header->in_out, &out, sizeof out);
    e.header->ent.payload_sz = 0;
  }
  e.last_cmd = kCmdCommitAndFetch;
  submit(q, e);
}

// Serves the ring until every entry has ended (unmount) or stop(). False on a fatal error.
bool Transport::Impl::serve_ring(Queue& q) {
  for (Entry& e : q.entries) {
    e.header = static_cast<ReqHeader*>(std::aligned_alloc(kPage, kPage));
    e.buffer = static_cast<char*>(std::aligned_alloc(kPage, kFront + payload_size));
    if (!e.header || !e.buffer) {
      stop_on_error("ring buffers", ENOMEM);
      return false;
    }
    std::memset(e.header, 0, kPage);
    e.iov[0] = {e.header, sizeof(ReqHeader)};
    e.iov[1] = {e.payload(), payload_size};
    e.last_cmd = kCmdRegister;
    submit(q, e);
  }
  io_uring_sqe* poll = io_uring_get_sqe(&q.ring);
  io_uring_prep_poll_add(poll, q.stop_fd, POLLIN);
  poll->user_data = kStopTag;

  size_t live = q.entries.size();
  for (;;) {
    int r = io_uring_submit_and_wait(&q.ring, 1);
    if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
      stop_on_error("io_uring_enter", -r);
      return false;
    }
    bool stop = false;
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&q.ring, head, cqe) {
      ++seen;
      if (cqe->user_data == kStopTag) {
        stop = true;
        continue;
      }
      Entry& e = *reinterpret_cast<Entry*>(uintptr_t(cqe->user_data));
      if (cqe->res == 0) {
        serve(q, e);
      } else if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
        submit(q, e);  // the kernel was not ready for it yet
      } else {
        // ENOTCONN/ECONNABORTED: the mount is gone; anything else leaves this entry unused.
        if (cqe->res != -ENOTCONN && cqe->res != -ECONNABORTED && cqe->res != -ECANCELED)
          spdlog::warn("io_uring queue {}: {} failed: {}", q.qid,
                       e.last_cmd == kCmdRegister ? "REGISTER" : "COMMIT_AND_FETCH", std::strerror(-cqe->res));
        --live;
      }
    }
    io_uring_cq_advance(&q.ring, seen);
    if (stop || live == 0) return true;
  }
}

void Transport::Impl::run(Queue& q) {
  char name[16];
  std::snprintf(name, sizeof name, "strata-uring%u", q.qid);
  pthread_setname_np(pthread_self(), name);
  pin_to_cpu(q.qid);
  std::string error;
  bool ok = set_up(q, error);
  std::unique_lock lock(mutex);
  ++started;
  if (!ok && failed++ == 0) first_error = error;
  changed.notify_all();
  if (ok) changed.wait(lock, [this] { return phase == Phase::Go || phase == Phase::NoGo; });
  bool go = ok && phase == Phase::Go;
  lock.unlock();
  if (go) serve_ring(q);
  close_ring(q);
}

void Transport::Impl::join() {
  std::lock_guard lock(join_mutex);
  for (auto& q : queues)
    if (q->thread.joinable()) q->thread.join();
}

std::unique_ptr<Transport> prepare(fuse_session* se, std::string& why) {
  why = kernel_switch_off_reason();
  if (!why.empty()) return nullptr;
  auto impl = std::make_unique<Transport::Impl>();
  impl->se = se;
  impl->dev_fd = fuse_session_fd(se);
  size_t n = possible_cpus();
  for (size_t i = 0; i < n; ++i) {
    impl->queues.push_back(std::make_unique<Queue>());
    impl->queues.back()->qid = unsigned(i);
  }
  // Signals go to libfuse's loop (its handler unmounts), never to a ring thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (auto& q : impl->queues) {
    Queue* qp = q.get();
    Transport::Impl* ip = impl.get();
    try {
      q->thread = std::thread([ip, qp] { ip->run(*qp); });
    } catch (const std::system_error& e) {
      std::lock_guard lock(impl->mutex);
      ++impl->started;
      if (impl->failed++ == 0) impl->first_error = std::string("thread: ") + e.what();
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  {
    std::unique_lock lock(impl->mutex);
    impl->changed.wait(lock, [&] { return impl->started == n; });
    impl->phase = impl->failed ? Transport::Impl::Phase::NoGo : Transport::Impl::Phase::Waiting;
    why = impl->first_error;
  }
  impl->changed.notify_all();
  if (!why.empty()) {
    impl->join();
    return nullptr;
  }
  g_impl = impl.get();
  return std::make_unique<Transport>(std::move(impl));
}

Transport::Transport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::~Transport() { stop(); }
size_t Transport::queues() const { return impl_->queues.size(); }

void Transport::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopped) return;
    impl_->stopped = true;
    if (impl_->phase == Impl::Phase::Waiting) impl_->phase = Impl::Phase::NoGo;
  }
  impl_->changed.notify_all();
  for (auto& q : impl_->queues) {
    uint64_t one = 1;
    if (q->stop_fd >= 0 && ::write(q->stop_fd, &one, sizeof one) < 0)
      spdlog::debug("io_uring queue {}: stop: {}", q->qid, std::strerror(errno));
  }
  impl_->join();
  g_impl = nullptr;
}

bool prepared() {
  Transport::Impl* t = g_impl.load();
  if (!t) return false;
  std::lock_guard lock(t->mutex);
  return t->phase == Transport::Impl::Phase::Waiting;
}

bool wants_negotiation(uint32_t offered2) {
  Transport::Impl* t = g_impl.load();
  if (!t || !(offered2 & kInit2OverIoUring)) return false;
  std::lock_guard lock(t->mutex);
  return t->phase == Transport::Impl::Phase::Waiting;
}

void init_answered(bool negotiated, uint32_t max_write, uint32_t max_pages) {
  Transport::Impl* t = g_impl.load();
  if (!t) return;
  {
    std::lock_guard lock(t->mutex);
    if (t->phase != Transport::Impl::Phase::Waiting) return;
    // The kernel's payload size: max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages).
    size_t payload = std::max<size_t>({8192, max_write, size_t(max_pages) * kPage});
    t->payload_size = (payload + kPage - 1) / kPage * kPage;
    t->phase = negotiated ? Transport::Impl::Phase::Go : Transport::Impl::Phase::NoGo;
  }
  t->changed.notify_all();
  if (negotiated) {
    spdlog::info("transport: io_uring, {} queues (one per CPU) of {} requests", t->queues.size(), kDepth);
  } else {
    t->join();  // the rings are closed before the kernel reads the INIT reply
    spdlog::info("transport: /dev/fuse (the kernel offered no io_uring in INIT)");
  }
}

ReplyBuffer reply_buffer() {
  Entry* e = t_entry;
  if (!e) return {nullptr, 0};
  return {e->payload(), g_impl.load()->payload_size};
}

bool reply_to_ring(const iovec* iov, int count, ssize_t* sent) {
  Entry* e = t_entry;
  fuse_out_header out;
  if (!e || count < 1 || iov[0].iov_len != sizeof out) return false;
  std::memcpy(&out, iov[0].iov_base, sizeof out);
  if (out.unique != e->unique) return false;  // a notification, or the answer to an INTERRUPT
  size_t total = 0;
  for (int i = 1; i < count; ++i) total += iov[i].iov_len;
  size_t room = g_impl.load()->payload_size;
  if (total > room) {
    spdlog::error("io_uring: reply of {} bytes does not fit the {} byte buffer", total, room);
    out.error = -EIO;
    total = 0;
  } else {
    char* at = e->payload();
    for (int i = 1; i < count; ++i) {
      if (iov[i].iov_base != at) std::memmove(at, iov[i].iov_base, iov[i].iov_len);  // reply_buffer()
      at += iov[i].iov_len;
    }
  }
  out.len = uint32_t(sizeof out + total);
  std::memcpy(e->header->in_out, &out, sizeof out);
  e->header->ent.payload_sz = uint32_t(total);
  e->replied = true;
  *sent = ssize_t(out.len);
  return true;
}

}  // namespace strata::fs::fuse::uring
