#include "harness/moe/static_exchange.h"

#include <stdexcept>
#include <string>

#include <torch/autograd.h>

#include "harness/util/time.h"

namespace moebench {

void StaticTally::Add(bool backward, const at::Tensor& rows) {
  at::Tensor& sum = backward ? bwd : fwd;
  if (!fwd.defined()) {
    fwd = at::zeros_like(rows);
    bwd = at::zeros_like(rows);
  }
  sum.add_(rows);
}

void StaticTally::AddExpertRows(const at::Tensor& rows) {
  if (!expert_rows.defined()) expert_rows = at::zeros_like(rows);
  expert_rows.add_(rows);
}

void StaticTally::Zero() {
  for (at::Tensor* t : {&fwd, &bwd, &expert_rows}) {
    if (t->defined()) t->zero_();
  }
}

namespace {

// [W, E, C, d] <-> [E, W, C, d]: the same permutation both ways.
at::Tensor Swap(const at::Tensor& x) { return x.transpose(0, 1).contiguous(); }

// The exchange of `x` in one direction (`reverse`: the combine's direction, or a gradient's),
// counted: calls, measured time and wire bytes now, logical rows on the device (the tally).
at::Tensor SwapAndCount(Comm& comm, const at::Tensor& x, const StaticExchangeSpec& spec,
                        const char* phase, bool reverse) {
  const int w = comm.topology().workers;
  const std::vector<int64_t> wire = reverse ? TransposeSquare(spec.wire_bytes, w) : spec.wire_bytes;
  const double t0 = SteadyNowMs();
  at::Tensor y;
  if (comm.plays_all_workers()) {
    y = Swap(x);
  } else if (!spec.move) {
    y = x;
  } else {
    y = comm.AllToAll(x.contiguous(),
                      reverse ? TransposeSquare(spec.split_rows, w) : spec.split_rows);
  }
  comm.meter().Record(spec.layer, phase, comm.topology(),
                      std::vector<int64_t>(static_cast<size_t>(w) * w, 0), spec.row_bytes, wire,
                      spec.move ? 1 : 0, SteadyNowMs() - t0, spec.only_source);
  spec.tally->row_bytes = spec.row_bytes;
  spec.tally->Add(std::string(phase) == "bwd",
                  reverse ? spec.rows.view({w, w}).t().reshape({-1}) : spec.rows);
  return y;
}

class StaticExchangeFunction : public torch::autograd::Function<StaticExchangeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, Comm* comm,
                            const StaticExchangeSpec* spec, bool reverse) {
    ctx->saved_data["comm"] = reinterpret_cast<int64_t>(comm);
    ctx->saved_data["tally"] = reinterpret_cast<int64_t>(spec->tally);
    ctx->saved_data["layer"] = static_cast<int64_t>(spec->layer);
    ctx->saved_data["row_bytes"] = spec->row_bytes;
    ctx->saved_data["wire"] = spec->wire_bytes;
    ctx->saved_data["move"] = spec->move;
    ctx->saved_data["rows"] = spec->rows;
    ctx->saved_data["split"] = spec->split_rows;
    ctx->saved_data["only_source"] = static_cast<int64_t>(spec->only_source);
    ctx->saved_data["reverse"] = reverse;
    return SwapAndCount(*comm, x, *spec, "fwd", reverse);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Comm*>(ctx->saved_data["comm"].toInt());
    StaticExchangeSpec spec;
    spec.tally = reinterpret_cast<StaticTally*>(ctx->saved_data["tally"].toInt());
    spec.layer = static_cast<int>(ctx->saved_data["layer"].toInt());
    spec.row_bytes = ctx->saved_data["row_bytes"].toInt();
    spec.wire_bytes = ctx->saved_data["wire"].toIntVector();
    spec.move = ctx->saved_data["move"].toBool();
    spec.rows = ctx->saved_data["rows"].toTensor();
    spec.split_rows = ctx->saved_data["split"].toIntVector();
    spec.only_source = static_cast<int>(ctx->saved_data["only_source"].toInt());
    // The gradient of "src -> dst" travels "dst -> src".
    const bool reverse = !ctx->saved_data["reverse"].toBool();
    return {SwapAndCount(*comm, grads[0], spec, "bwd", reverse), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor StaticExchange(Comm& comm, const at::Tensor& x, const StaticExchangeSpec& spec,
                          bool to_experts) {
  if (!comm.plays_all_workers() && spec.move &&
      spec.split_rows.size() != static_cast<size_t>(comm.size()) * comm.size()) {
    throw std::logic_error("StaticExchange: a rank needs the split rows of every rank pair");
  }
  if (spec.tally == nullptr || !spec.rows.defined()) {
    throw std::logic_error("StaticExchange: the spec needs its rows and a tally");
  }
  if (!x.requires_grad()) return SwapAndCount(comm, x, spec, "fwd", !to_experts);
  return StaticExchangeFunction::apply(x, &comm, &spec, !to_experts);
}

}  // namespace moebench
