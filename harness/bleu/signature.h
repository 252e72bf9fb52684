// sacreBLEU-style reproducibility signatures ("nrefs:1|case:mixed|...|version:2.3.1").
// Field order follows sacreBLEU's Signature class: nrefs, then bs and seed when a bootstrap test
// produced the score, then the metric's own fields, and version always last.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moebench {

// The sacreBLEU release whose behaviour and signatures we reproduce. Scores computed here
// should equal `sacrebleu` 2.3.1's for the tokenizers and options we support.
inline constexpr const char* kSacreBleuVersion = "2.3.1";

using SignatureFields = std::vector<std::pair<std::string, std::string>>;

// Joins nrefs, the metric's fields and the version into a signature string.
std::string BuildSignature(const std::string& nrefs, const SignatureFields& metric_fields);

// Inserts "bs:<num_samples>|seed:<seed>" after the leading nrefs field, as sacreBLEU's paired
// bootstrap test does.
std::string AddBootstrapFields(const std::string& signature, int num_samples,
                               const std::string& seed);

// Splits a signature into its key:value pairs, in order (for JSON output).
SignatureFields ParseSignature(const std::string& signature);

}  // namespace moebench
