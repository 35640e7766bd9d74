// strata-fs uses the project-wide owning fd (strata::UniqueFd).
#pragma once

#include "common/unique_fd.hpp"
