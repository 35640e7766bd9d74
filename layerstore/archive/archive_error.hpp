#pragma once
// libarchive's error text for `a`. Some of its failures on hostile input (a GNU sparse 1.0
// map it cannot parse) return ARCHIVE_FATAL without setting one, and archive_error_string
// then returns NULL, which must not reach a std::string.
#include <archive.h>

#include <string>

namespace strata {

inline std::string archive_error_text(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "libarchive failed without saying why";
}

}  // namespace strata
