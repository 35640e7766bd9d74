// The time as Docker writes it in configs, State and json-file logs: RFC 3339 in UTC with nine
// fractional digits (Go's RFC3339NanoFixed), e.g. 2026-11-30T01:23:45.123456789Z.
#pragma once

#include <string>

namespace strata {

std::string rfc3339_now();

}  // namespace strata
