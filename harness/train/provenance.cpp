#include "harness/train/provenance.h"

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "harness/store/liveness.h"
#include "harness/torch_compat.h"
#include "harness/train/device.h"
#include "harness/util/blas_info.h"

namespace moebench {
namespace {

std::string EnvOr(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

void FillProvenance(RunRow& row, const Training& t) {
  row.host = ThisHost();
  row.device = DeviceDescription(t.device);
  row.world_size = t.spec.world_size;
  row.threads = t.threads;
  row.params_total = t.params.total;
  row.params_active = t.params.active;
  const BlasInfo blas = DetectBlas();
  // The experts' widths decide whether a GPU's grouped GEMM can take them (ExpertSchedule).
  int64_t d_model = 8, d_hidden = 8;
  if (const std::vector<MoeLayer> layers = t.model->MoeLayers(); !layers.empty()) {
    d_model = layers[0]->experts().d_model();
    d_hidden = layers[0]->experts().d_hidden();
  }
  nlohmann::json libs = {{"torch", compat::TorchVersion()}, {"sqlite", SqliteVersion()}};
  // The data a run saw: corpus content hash and provenance (packages and versions for l10n),
  // and the SentencePiece model's hash.
  libs["corpus"] = {{"name", t.data.corpus.name},
                    {"content_hash", t.data.corpus.content_hash},
                    {"provenance", t.data.corpus.provenance},
                    {"spm_model_hash", t.data.vocab.model_hash()}};
  libs["env"] = {
      {"OMP_WAIT_POLICY", EnvOr("OMP_WAIT_POLICY")},
      {"OPENBLAS_CORETYPE", EnvOr("OPENBLAS_CORETYPE")},
      {"blas_core", blas.core},
      {"blas_config", blas.config},
      {"intra_op_threads", t.threads},
      // batched: the static path's one GEMM pair over the padded buffers
      {"expert_schedule",
       t.spec.moe_path == "static"
           ? "batched"
           : ExpertSchedule(t.device, t.bf16 ? at::kBFloat16 : at::kFloat, d_model, d_hidden)}};
  libs["compute"] = {{"device", DeviceDescription(t.device)},
                     {"precision", t.spec.precision},
                     {"peak_tflops", t.peak.flops_per_s / 1e12},
                     {"peak_source", t.peak.source}};
  libs["comm"] = {{"backend", t.comm->backend()},
                  {"world_size", t.comm->size()},
                  {"workers", t.comm->topology().workers},
                  {"workers_per_node", t.comm->topology().workers_per_node},
                  {"launcher", t.dist ? t.dist->source : ""}};
  row.libs = libs.dump();
}

std::string BlasWarning() {
  const BlasInfo blas = DetectBlas();
  if (blas.core != "Prescott" || !__builtin_cpu_supports("avx2")) return "";
  // A CPU whose model OpenBLAS 0.3.21 does not recognise (seen on VMs that report a generic
  // "Intel Xeon Processor") gets the SSE3 kernels: GEMMs ~1.6x slower than SkylakeX ones.
  return "note: OpenBLAS runs its generic Prescott kernels on this AVX2 CPU; matrix products "
         "are ~1.6x slower than they could be (OPENBLAS_CORETYPE=Haswell or SkylakeX selects "
         "faster ones; the run records the kernels as libs.env.blas_core)";
}

}  // namespace moebench
