#include "harness/model/block_dropout.h"

#include <stdexcept>

#include "methods/routing_util.h"

namespace moebench {

namespace {
// RoutingSeed's purpose for dropout masks (the routers use 1-31).
constexpr uint64_t kPurposeDropout = 41;
}  // namespace

at::Tensor BlockDropout(const at::Tensor& x, double p, const RouteContext& ctx, int site,
                        const WorkerBlocks& blocks) {
  if (p <= 0) return x;
  if (blocks.count != 1 && blocks.count != blocks.total) {
    throw std::logic_error("BlockDropout: a process holds one worker block or all of them");
  }
  const double keep = 1.0 - p;
  RouteContext c;
  c.seed = ctx.seed;
  c.step = ctx.step;
  c.pass = ctx.pass;
  c.layer = site;
  at::Tensor mask = at::empty_like(x, x.options(), at::MemoryFormat::Contiguous);
  if (ctx.graph_random) {
    // A graph step's mask (Note [Routing randomness]): the default generator, which a replay
    // advances; the per-block seeds that make a process's masks its ranks' would be replayed.
    mask.bernoulli_(keep, at::globalContext().defaultGenerator(x.device()));
    return x * mask.div_(keep);
  }
  const int64_t rows = x.size(0);
  for (int i = 0; i < blocks.count; ++i) {
    const int64_t r0 = rows * i / blocks.count, r1 = rows * (i + 1) / blocks.count;
    if (r1 == r0) continue;
    const uint64_t seed = RoutingSeed(c, blocks.first + i, kPurposeDropout);
    mask.narrow(0, r0, r1 - r0).bernoulli_(keep, MakeDeviceGenerator(seed, x.device()));
  }
  return x * mask.div_(keep);
}

}  // namespace moebench
