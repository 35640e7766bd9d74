// Open files: data moves between the kernel and the backing fd by splice where it can.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "fs/fuse/context.hpp"
#include "fs/fuse/init_flags.hpp"
#include "fs/fuse/uring.hpp"

namespace strata::fs::fuse {

namespace {

// FALLOCATE and COPY_FILE_RANGE carry no kill flag (kill_suidgid.hpp): for a set-id file the
// calling thread's capabilities are read from /proc.
Caller caller_with_capabilities(fuse_req_t req, int fd) {
  Caller caller = caller_of(req);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
    caller.has_fsetid = task_has_fsetid(fuse_req_ctx(req)->pid);
  return caller;
}

// How the kernel serves the open: straight from the backing file (passthrough), through the
// daemon with its page cache, or through the daemon without it (see passthrough.hpp).
// Whether a writer through this open may keep set-id bits the kernel writes past: root with
// CAP_FSETID (the kernel writes a passthrough file with the daemon's credentials).
bool may_keep_setid(fuse_req_t req, const OpenFile& file) {
  const fuse_ctx* c = fuse_req_ctx(req);
  if (c->uid != 0) return false;
  if ((file.flags & O_ACCMODE) == O_RDONLY) return true;
  return task_has_fsetid(c->pid).value_or(true);
}

BackingFiles::Grant choose_io(fuse_req_t req, OpenFile& file, fuse_file_info* fi) {
  Context& ctx = context(req);
  BackingFiles::Grant grant;
  if (ctx.backing && passthrough_negotiated()) grant = ctx.backing->acquire(file, may_keep_setid(req, file));
  switch (grant.mode) {
    case BackingFiles::Mode::Passthrough:
      fi->keep_cache = 0;  // the kernel refuses any other cache flag with passthrough
      fi->direct_io = 0;
      break;
    case BackingFiles::Mode::Busy:
      break;
    case BackingFiles::Mode::Cached:
      // A file served from a read-only layer cannot change under us: keep its pages across
      // opens. A copy-up keeps the data, and later writes go through this same inode.
      if (file.from_lower) fi->keep_cache = 1;
      break;
  }
  return grant;
}

void drop_file(fuse_req_t req, OpenFile* file) {
  if (context(req).backing) context(req).backing->release(*file);
  delete file;
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto file = overlay(req).open(node_of(req, ino), fi->flags, caller_of(req));
  if (!file) {
    fuse_reply_err(req, file.error());
    return;
  }
  auto grant = choose_io(req, **file, fi);
  if (grant.mode == BackingFiles::Mode::Busy) {
    fuse_reply_err(req, ETXTBSY);
    return;
  }
  fi->fh = reinterpret_cast<uint64_t>(file->release());
  int r;
  {
    ReplyWithBacking with(grant.id);
    r = fuse_reply_open(req, fi);
  }
  if (r == -ENOENT) drop_file(req, &file_of(fi));
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  auto created = overlay(req).create(node_of(req, parent), name, mode, fi->flags, caller_of(req));
  if (!created) {
    fuse_reply_err(req, created.error());
    return;
  }
  auto& [entry, file] = created.value();
  fuse_entry_param e = entry_param(context(req), entry);
  auto grant = choose_io(req, *file, fi);
  fi->fh = reinterpret_cast<uint64_t>(file.release());
  int r;
  {
    ReplyWithBacking with(grant.id);
    r = fuse_reply_create(req, &e, fi);
  }
  if (r == -ENOENT) {
    drop_file(req, &file_of(fi));
    overlay(req).forget(entry.node, 1);
  }
}

// Over io_uring the data is read straight into the ring entry's reply buffer, the one copy a
// reply there takes (libfuse would read it into a buffer of its own and copy that).
bool read_into_ring(fuse_req_t req, int fd, size_t size, off_t off) {
  uring::ReplyBuffer out = uring::reply_buffer();
  if (!out.data || size > out.size) return false;
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, out.data + got, size - got, off + off_t(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      fuse_reply_err(req, errno);
      return true;
    }
    if (n == 0) break;  // end of file
    got += size_t(n);
  }
  fuse_reply_buf(req, out.data, got);
  return true;
}

// A lower file served from a blob: its bytes come from the layer source, into the ring's
// reply buffer or a buffer of the worker thread's.
void read_streamed(fuse_req_t req, const LayerFileData& data, size_t size, off_t off) {
  thread_local std::vector<char> own;
  uring::ReplyBuffer out = uring::reply_buffer();
  if (!out.data || size > out.size) {
    if (own.size() < size) own.resize(size);
    out = {own.data(), own.size()};
  }
  ssize_t n = data.read_at(out.data, size, off);
  if (n < 0) fuse_reply_err(req, int(-n));
  else fuse_reply_buf(req, out.data, size_t(n));
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  if (const LayerFileData* data = overlay(req).streamed(file_of(fi))) {
    read_streamed(req, *data, size, off);
    return;
  }
  if (read_into_ring(req, overlay(req).io_fd(file_of(fi)), size, off)) return;
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = overlay(req).io_fd(file_of(fi));
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off, fuse_file_info* fi) {
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = overlay(req).io_fd(file_of(fi));
  out.buf[0].pos = off;
  ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
  if (n > 0) overlay(req).drop_setid_bits_for(out.buf[0].fd, caller_of(req));
  if (n < 0) fuse_reply_err(req, int(-n));
  else fuse_reply_write(req, size_t(n));
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  drop_file(req, &file_of(fi));
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  fuse_reply_err(req, overlay(req).fsync(file_of(fi), datasync != 0));
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info* fi) {
  int fd = overlay(req).io_fd(file_of(fi));
  int r = ::fallocate(fd, mode, off, len);
  int err = r == 0 ? 0 : errno;
  // The kernel counts fallocate as a change of the file (file_modified): set-id bits go.
  if (r == 0) overlay(req).drop_setid_bits_for(fd, caller_with_capabilities(req, fd));
  fuse_reply_err(req, err);
}

void op_lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  if (const LayerFileData* data = overlay(req).streamed(file_of(fi)); data && (whence == SEEK_DATA || whence == SEEK_HOLE)) {
    // Its fd is all holes; the layer knows where the file's data is.
    off_t r = data->seek_data(off, whence == SEEK_HOLE);
    if (r < 0) fuse_reply_err(req, int(-r));
    else fuse_reply_lseek(req, r);
    return;
  }
  off_t r = ::lseek(overlay(req).io_fd(file_of(fi)), off, whence);
  if (r < 0) fuse_reply_err(req, errno);
  else fuse_reply_lseek(req, r);
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t, off_t off_in, fuse_file_info* fi_in, fuse_ino_t,
                        off_t off_out, fuse_file_info* fi_out, size_t len, int flags) {
  loff_t in = off_in, out = off_out;
  if (overlay(req).streamed(file_of(fi_in))) {
    fuse_reply_err(req, EOPNOTSUPP);  // no fd holds its data: the kernel copies through READ
    return;
  }
  int out_fd = overlay(req).io_fd(file_of(fi_out));
  ssize_t n = ::copy_file_range(overlay(req).io_fd(file_of(fi_in)), &in, out_fd, &out, len, unsigned(flags));
  int err = n < 0 ? errno : 0;
  if (n >= 0) overlay(req).drop_setid_bits_for(out_fd, caller_with_capabilities(req, out_fd));  // a write
  if (n < 0) fuse_reply_err(req, err);
  else fuse_reply_write(req, size_t(n));
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.open = guarded<op_open>;
  ops.create = guarded<op_create>;
  ops.read = guarded<op_read>;
  ops.write_buf = guarded<op_write_buf>;
  // No flush: nothing to do on close(2), and without the operation the kernel stops sending it.
  ops.release = guarded<op_release>;
  ops.fsync = guarded<op_fsync>;
  ops.fallocate = guarded<op_fallocate>;
  ops.lseek = guarded<op_lseek>;
  ops.copy_file_range = guarded<op_copy_file_range>;
}

}  // namespace strata::fs::fuse
