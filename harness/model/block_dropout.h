// Dropout whose masks do not depend on how the batch is split over processes: the masks of a
// worker's block of sentences are the same whether one process plays every worker or each
// worker is a rank of its own. See Note [Dropout masks].
#pragma once

#include <ATen/ATen.h>

#include "methods/router.h"

namespace moebench {

// The worker blocks of the batch this process holds: every one of them (one process playing
// `total` workers: first 0, count total) or a single one (rank r: first r, count 1). Block w is
// rows [B*w/W, B*(w+1)/W) of the whole batch, as RankSlice cuts it.
struct WorkerBlocks {
  int first = 0;
  int count = 1;
  int total = 1;
};

// Note [Dropout masks]: torch's dropout draws from the process's default generator, so a rank
// holding worker w's sentences drew other masks for them than one process playing every worker
// (which draws for the whole batch in one go), and a run on ranks trained a different model
// from the one-process run with dropout > 0. Here the mask of each worker block comes from a
// generator seeded by (run seed, step, site, block, pass) through RoutingSeed (Note [Routing
// randomness]), `site` numbering the dropout calls of one forward pass: one process and the
// ranks draw identical masks for the same block, THOR's two passes draw different ones, and a
// resumed run draws what the uninterrupted run drew (no generator state is involved). Each
// block's mask is drawn on x's device (MakeDeviceGenerator): identical across processes on
// devices of one kind. x is [B, ...] with the batch's sentences first; x itself when p = 0.
// A graph step (ctx.graph_random, one process) draws the whole mask from the device's default
// generator instead, as torch's dropout does: the seeded generators would be replayed with the
// captured step's seeds (Note [Training step graphs] in harness/train/step_graphs.cpp).
at::Tensor BlockDropout(const at::Tensor& x, double p, const RouteContext& ctx, int site,
                        const WorkerBlocks& blocks);

}  // namespace moebench
