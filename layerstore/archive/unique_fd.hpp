// The layer store uses the project-wide owning fd.
#pragma once

#include "common/unique_fd.hpp"
