#include "datasets/charset.h"

#include <unicode/ucnv.h>
#include <unicode/ucnv_err.h>
#include <unicode/ustring.h>

#include <memory>
#include <stdexcept>
#include <vector>

namespace moebench {

std::string ConvertToUtf8(const std::string& bytes, const std::string& charset) {
  if (bytes.empty()) return bytes;
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<UConverter, void (*)(UConverter*)> converter(ucnv_open(charset.c_str(), &status),
                                                               ucnv_close);
  if (U_FAILURE(status) || converter == nullptr) {
    throw std::runtime_error("unknown character set '" + charset + "': " + u_errorName(status));
  }
  ucnv_setToUCallBack(converter.get(), UCNV_TO_U_CALLBACK_STOP, nullptr, nullptr, nullptr, &status);
  // Any legacy byte becomes at most two UTF-16 units.
  std::vector<UChar> utf16(2 * bytes.size() + 1);
  int32_t utf16_length =
      ucnv_toUChars(converter.get(), utf16.data(), static_cast<int32_t>(utf16.size()), bytes.data(),
                    static_cast<int32_t>(bytes.size()), &status);
  if (U_FAILURE(status)) {
    throw std::runtime_error("text is not valid " + charset + ": " + u_errorName(status));
  }
  std::string utf8(4 * static_cast<size_t>(utf16_length) + 1, '\0');
  int32_t utf8_length = 0;
  u_strToUTF8(&utf8[0], static_cast<int32_t>(utf8.size()), &utf8_length, utf16.data(), utf16_length,
              &status);
  if (U_FAILURE(status)) {
    throw std::runtime_error("cannot re-encode " + charset +
                             " text as UTF-8: " + u_errorName(status));
  }
  utf8.resize(utf8_length);
  return utf8;
}

}  // namespace moebench
