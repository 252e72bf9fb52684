// OpTrace and TraceDifferences (harness/train/op_trace.h) under the tests' namespace.
#pragma once

#include "harness/train/op_trace.h"

namespace moebench::testing {
using moebench::OpTrace;
using moebench::TraceDifferences;
}  // namespace moebench::testing
