#include "harness/moe/exchange.h"

#include <chrono>

#include <torch/autograd.h>

#include "harness/util/time.h"

namespace moebench {

namespace {

at::Tensor SendAndCount(Comm& comm, const at::Tensor& x, const ExchangeSpec& spec,
                        const std::string& phase, bool reverse) {
  const int w = comm.topology().workers;
  const std::vector<int64_t> rows = reverse ? TransposeSquare(spec.rows, w) : spec.rows;
  const std::vector<int64_t> wire = reverse ? TransposeSquare(spec.wire_bytes, w) : spec.wire_bytes;
  const int64_t row_bytes = x.size(1) * static_cast<int64_t>(x.element_size());
  const double t0 = SteadyNowMs();
  at::Tensor y = spec.move ? comm.AllToAll(x, rows) : x;
  comm.meter().Record(spec.layer, phase, comm.topology(), rows, row_bytes, wire, spec.move ? 1 : 0,
                      SteadyNowMs() - t0, spec.only_source);
  return y;
}

class ExchangeFunction : public torch::autograd::Function<ExchangeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Comm* comm,
                            const ExchangeSpec* spec) {
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["layer"] = static_cast<int64_t>(spec->layer);
    ctx->saved_data["rows"] = spec->rows;
    ctx->saved_data["wire"] = spec->wire_bytes;
    ctx->saved_data["move"] = spec->move;
    ctx->saved_data["only_source"] = static_cast<int64_t>(spec->only_source);
    return SendAndCount(*comm, x, *spec, "fwd", /*reverse=*/false);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Comm*>(ctx->saved_data["comm"].toInt());
    ExchangeSpec spec;
    spec.layer = static_cast<int>(ctx->saved_data["layer"].toInt());
    spec.rows = ctx->saved_data["rows"].toIntVector();
    spec.wire_bytes = ctx->saved_data["wire"].toIntVector();
    spec.move = ctx->saved_data["move"].toBool();
    spec.only_source = static_cast<int>(ctx->saved_data["only_source"].toInt());
    // The backward of "src -> dst" sends the gradient rows "dst -> src".
    at::Tensor g = SendAndCount(*comm, grads[0].contiguous(), spec, "bwd", /*reverse=*/true);
    return {g, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor MeteredExchange(Comm& comm, const at::Tensor& x, const ExchangeSpec& spec) {
  if (!x.requires_grad()) return SendAndCount(comm, x, spec, "fwd", /*reverse=*/false);
  return ExchangeFunction::apply(x, &comm, &spec);
}

}  // namespace moebench
