#pragma once
// The layer tar is read twice: by TarSplitRecorder, the way Go's archive/tar (Docker,
// tar-split) reads it, and by libarchive, which extraction uses. Where the two would read
// the same bytes differently, strata would show one tree and Docker another; so each entry
// libarchive yields is checked against the entry Go reads at the same place, and any
// difference fails the layer: "entry N ("name"): tar readers disagree: <what>".
#include <deque>
#include <mutex>
#include <optional>

#include "layerstore/archive/tar_header.hpp"

struct archive_entry;

namespace strata {

// Entries the recorder (producer thread) has read, waiting for libarchive (extraction
// thread). The recorder reads every byte before libarchive is given it, so an entry
// libarchive reads is always queued by then: a missing one is a disagreement, not a wait.
class TarEntryQueue {
 public:
  void push(TarEntryView&& v);
  std::optional<TarEntryView> pop();

 private:
  std::mutex mu_;
  std::deque<TarEntryView> q_;
};

// Throws strata::Error when libarchive's entry `e` (the `n`-th, from 1) differs from `go`.
void check_same_entry(const std::optional<TarEntryView>& go, archive_entry* e, uint64_t n);
// After libarchive's end of archive: throws if Go reads more entries.
void check_no_entry_left(const std::optional<TarEntryView>& go);

}  // namespace strata
