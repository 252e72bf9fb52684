#include "harness/bleu/signature.h"

#include <stdexcept>

namespace moebench {

std::string BuildSignature(const std::string& nrefs, const SignatureFields& metric_fields) {
  std::string signature = "nrefs:" + nrefs;
  for (const auto& field : metric_fields) signature += "|" + field.first + ":" + field.second;
  signature += "|version:";
  signature += kSacreBleuVersion;
  return signature;
}

std::string AddBootstrapFields(const std::string& signature, int num_samples,
                               const std::string& seed) {
  const std::string fields = "bs:" + std::to_string(num_samples) + "|seed:" + seed;
  const size_t bar = signature.find('|');
  if (bar == std::string::npos) return signature + "|" + fields;
  return signature.substr(0, bar + 1) + fields + signature.substr(bar);
}

SignatureFields ParseSignature(const std::string& signature) {
  SignatureFields fields;
  size_t start = 0;
  while (start <= signature.size() && !signature.empty()) {
    size_t end = signature.find('|', start);
    if (end == std::string::npos) end = signature.size();
    const std::string item = signature.substr(start, end - start);
    const size_t colon = item.find(':');
    if (colon == std::string::npos) {
      throw std::runtime_error("malformed signature field '" + item + "' in '" + signature + "'");
    }
    fields.emplace_back(item.substr(0, colon), item.substr(colon + 1));
    start = end + 1;
  }
  return fields;
}

}  // namespace moebench
