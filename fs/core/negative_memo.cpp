#include "fs/core/negative_memo.hpp"

namespace strata::fs {

void NegativeMemo::remember(uint64_t dir_id, std::string_view name, uint64_t version, const Absence& absence) {
  std::lock_guard lock(mutex_);
  Slot* slot = nullptr;
  for (Slot& s : slots_)
    if (s.dir_id == dir_id && s.name == name) slot = &s;
  if (!slot) {
    slot = &slots_[next_];
    next_ = (next_ + 1) % slots_.size();
    slot->dir_id = dir_id;
    slot->name.assign(name);
  }
  slot->version = version;
  slot->absence = absence;
}

bool NegativeMemo::recall(uint64_t dir_id, std::string_view name, uint64_t version, Absence& absence) const {
  std::lock_guard lock(mutex_);
  for (const Slot& s : slots_) {
    if (s.dir_id == dir_id && s.version == version && s.name == name) {
      absence = s.absence;
      return true;
    }
  }
  return false;
}

}  // namespace strata::fs
