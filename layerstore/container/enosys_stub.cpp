#include "layerstore/container/enosys_stub.hpp"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <map>
#include <string>

#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr uint32_t kX32Bit = 0x40000000;

// seccomp_data: nr at 0, arch at 4.
constexpr uint32_t kNrOffset = 0;
constexpr uint32_t kArchOffset = 4;

uint32_t audit_arch_of(uint32_t scmp_arch) {
  // SCMP_ARCH_* is the AUDIT_ARCH_* value but for x32, a libseccomp-only value.
  return scmp_arch == SCMP_ARCH_X32 ? AUDIT_ARCH_X86_64 : scmp_arch;
}

// A tiny assembler: conditional jumps name their targets by label and are resolved at the end.
class Program {
 public:
  using Label = int;
  Label label() {
    at_.push_back(-1);
    return Label(at_.size() - 1);
  }
  void bind(Label l) { at_[size_t(l)] = int(code_.size()); }
  void load(uint32_t offset) { code_.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  void ret(uint32_t value) { code_.push_back(BPF_STMT(BPF_RET | BPF_K, value)); }
  void jump(Label to) { emit(BPF_JMP | BPF_JA, 0, to, -1); }
  // if (A <op> k) goto yes; else goto no (no = -1: the next instruction).
  void jump_if(uint16_t op, uint32_t k, Label yes, Label no = -1) { emit(BPF_JMP | op | BPF_K, k, yes, no); }

  std::vector<sock_filter> finish() {
    for (const auto& f : fixups_) {
      auto dist = [&](Label l) {
        if (l < 0) return 0;
        int d = at_[size_t(l)] - f.at - 1;
        if (d < 0 || (f.always == false && d > 255)) throw Error("seccomp: ENOSYS stub jump out of range");
        return d;
      };
      sock_filter& insn = code_[size_t(f.at)];
      if (f.always) insn.k = uint32_t(dist(f.yes));
      else insn.jt = uint8_t(dist(f.yes)), insn.jf = uint8_t(dist(f.no));
    }
    return code_;
  }

 private:
  struct Fixup {
    int at;
    Label yes, no;
    bool always;
  };
  void emit(uint16_t code, uint32_t k, Label yes, Label no) {
    fixups_.push_back({int(code_.size()), yes, no, (code & 0xf0) == BPF_JA});
    code_.push_back(BPF_JUMP(code, k, 0, 0));
  }
  std::vector<sock_filter> code_;
  std::vector<int> at_;
  std::vector<Fixup> fixups_;
};

}  // namespace

std::vector<EnosysLimit> enosys_limits(const std::vector<uint32_t>& scmp_arches, const std::vector<const char*>& names) {
  std::vector<EnosysLimit> limits;
  for (uint32_t arch : scmp_arches) {
    int last = -1;
    for (const char* name : names) last = std::max(last, seccomp_syscall_resolve_name_arch(arch, name));
    if (last > 0) limits.push_back({audit_arch_of(arch), arch == SCMP_ARCH_X32, uint32_t(last)});
  }
  return limits;
}

std::vector<sock_filter> enosys_stub(const std::vector<EnosysLimit>& limits) {
  // Per AUDIT_ARCH: the limit without bit 30 and (x86_64 only) the one with it.
  std::map<uint32_t, std::pair<const EnosysLimit*, const EnosysLimit*>> by_arch;
  for (const auto& l : limits) (l.x32 ? by_arch[l.audit_arch].second : by_arch[l.audit_arch].first) = &l;

  Program p;
  auto enosys = p.label();
  auto filter = p.label();
  std::vector<std::pair<uint32_t, Program::Label>> sections;
  p.load(kArchOffset);
  for (const auto& [arch, lim] : by_arch) {
    sections.emplace_back(arch, p.label());
    p.jump_if(BPF_JEQ, arch, sections.back().second);
  }
  p.jump(filter);
  for (const auto& [arch, section] : sections) {
    const auto& [plain, x32] = by_arch[arch];
    p.bind(section);
    p.load(kNrOffset);
    if (arch == AUDIT_ARCH_S390 || arch == AUDIT_ARCH_S390X) p.jump_if(BPF_JEQ, 0, enosys);
    if (arch == AUDIT_ARCH_X86_64) {
      auto x32_calls = p.label();
      p.jump_if(BPF_JSET, kX32Bit, x32_calls);
      if (plain) p.jump_if(BPF_JGT, plain->last, enosys);
      p.jump(filter);
      p.bind(x32_calls);
      if (x32) p.jump_if(BPF_JGT, x32->last, enosys);
      p.jump(filter);
    } else {
      if (plain) p.jump_if(BPF_JGT, plain->last, enosys);
      p.jump(filter);
    }
  }
  p.bind(enosys);
  p.ret(SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));
  p.bind(filter);
  return p.finish();
}

void load_with_enosys_stub(scmp_filter_ctx filter, const std::vector<EnosysLimit>& limits) {
  int fd = ::memfd_create("seccomp-bpf", MFD_CLOEXEC);
  if (fd < 0) throw Error(std::string("seccomp: memfd_create: ") + std::strerror(errno));
  std::vector<sock_filter> program = enosys_stub(limits);
  size_t stub = program.size();
  int rc = seccomp_export_bpf(filter, fd);
  off_t size = rc == 0 ? ::lseek(fd, 0, SEEK_END) : -1;
  if (rc == 0 && size > 0 && size % sizeof(sock_filter) == 0) {
    program.resize(stub + size_t(size) / sizeof(sock_filter));
    if (::pread(fd, program.data() + stub, size_t(size), 0) != size) rc = -EIO;
  } else if (rc == 0) {
    rc = -EIO;
  }
  ::close(fd);
  if (rc != 0) throw Error(std::string("seccomp: export the filter: ") + std::strerror(-rc));
  if (program.size() > BPF_MAXINSNS) throw Error("seccomp: the filter is too long");
  sock_fprog prog{uint16_t(program.size()), program.data()};
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
    throw Error(std::string("seccomp: load the filter: ") + std::strerror(errno));
}

}  // namespace strata
