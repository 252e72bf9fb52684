// What an error says, for a person: LibTorch's errors (c10::Error) carry a C++ stack trace in
// what(); users get the message without it.
#pragma once

#include <exception>
#include <string>

#include <c10/util/Exception.h>

namespace moebench {

inline std::string ErrorText(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    return c10_error->what_without_backtrace();
  }
  return e.what();
}

}  // namespace moebench
