// The one exception type of the results store. Its message names the database path, the
// SQLite message and the SQL or key involved.
#pragma once

#include <stdexcept>

namespace moebench {

class StoreError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

}  // namespace moebench
