"""The network model: counted bytes -> modeled cluster communication and step time.

Two sources, per run:

1. The trainer's model (runs that log ``comm.modeled_ms``). The C++ meter models every exchange
   of the run (token all-to-alls, split-size exchanges, the gradient all-reduce) with the run's
   own link parameters (``intra_node_gbps``, ``inter_node_gbps``, ``intra_node_latency_us``,
   ``inter_node_latency_us`` of its spec_json; the defaults below when absent); see Note
   [Network model] in harness/comm/network_model.h and docs/network-model.md. Per training
   step:

       compute           = step_ms - comm.measured_ms        (the trainer logs it: compute_ms)
       modeled step time = compute + comm.modeled_ms         (the trainer logs it: step_modeled_ms)

   ``step_modeled_ms`` is used when logged, else derived from the three metrics; the modeled
   communication per step is ``comm.modeled_ms``. The time measured here for communication
   (memory copies when one process plays every worker) is replaced by the modeled one.

2. The fallback, for databases written before the trainer had a model (no ``comm.modeled_ms``):
   the report computes a time from what every run counts, with DEFAULT_NETWORK:

       modeled step time = measured step time
                           + wire other-node bytes / inter-node bandwidth
                           + wire same-node bytes  / intra-node bandwidth
                           + all-to-all calls x latency

   per training step, with the bytes and calls the per-step averages of the run's ``comm.*``
   metrics. Wire bytes (what the exchange format puts on the links: padded buffers by default)
   rather than logical routed bytes, because the links carry the padding too. Same-worker rows
   never touch a link. Deliberately simple and conservative: all traffic of a class is charged
   to one link of that class (no overlap of transfers, no overlap with compute), and the
   measured step time, communication included, is that of the one process playing every
   worker.

The link defaults live here (for the fallback and the table) and in the C++ RunSpec; they are
the same numbers.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class NetworkModel:
    inter_node_bytes_per_s: float
    intra_node_bytes_per_s: float
    inter_node_latency_s: float
    intra_node_latency_s: float

    def describe(self):
        return (f"inter-node {self.inter_node_bytes_per_s * 8 / 1e9:g} Gb/s "
                f"(InfiniBand-class), {self.inter_node_latency_s * 1e6:g} us per all-to-all; "
                f"intra-node {self.intra_node_bytes_per_s / 1e9:g} GB/s (NVLink-class), "
                f"{self.intra_node_latency_s * 1e6:g} us per all-to-all")


# 100 Gb/s InfiniBand (the Gating Dropout paper's V100 cluster), NVLink-class 150 GB/s.
DEFAULT_NETWORK = NetworkModel(
    inter_node_bytes_per_s=100e9 / 8,
    intra_node_bytes_per_s=150e9,
    inter_node_latency_s=5e-6,
    intra_node_latency_s=2e-6,
)

# Run-spec keys of the link parameters (per rank) and their defaults (harness/spec/run_spec.cpp).
SPEC_LINK_KEYS = {"intra_node_gbps": 1200.0, "inter_node_gbps": 100.0,
                  "intra_node_latency_us": 2.0, "inter_node_latency_us": 5.0}

# Metrics the trainer logs with its network model.
MODELED_COMM = "comm.modeled_ms"
MEASURED_COMM = "comm.measured_ms"
STEP_MODELED = "step_modeled_ms"
# Modeled compute: the step's FLOPs on the spec's device_profile (v100-32gb, a100-80gb, h100)
# at device_efficiency. Runs that log it have step_modeled_ms = compute_modeled_ms +
# comm.modeled_ms: a time on the cluster, nothing of it measured on this machine.
COMPUTE_MODELED = "compute_modeled_ms"
# The compute model's spec keys and their defaults (harness/spec/run_spec.cpp): the spec JSON
# leaves them out when they are at their defaults.
SPEC_COMPUTE_DEFAULTS = {"device_profile": "v100-32gb", "device_efficiency": 0.4,
                         "comm_overlap": 0.0}
FLOPS_PER_STEP = "flops_per_step"


def network_of_spec(spec):
    """The link parameters a run was modeled with: its spec's, the defaults where absent (the
    spec JSON leaves out values equal to the defaults)."""
    v = {k: float(spec.get(k, d)) for k, d in SPEC_LINK_KEYS.items()}
    return NetworkModel(inter_node_bytes_per_s=v["inter_node_gbps"] * 1e9 / 8,
                        intra_node_bytes_per_s=v["intra_node_gbps"] * 1e9 / 8,
                        inter_node_latency_s=v["inter_node_latency_us"] / 1e6,
                        intra_node_latency_s=v["intra_node_latency_us"] / 1e6)


def comm_seconds_per_step(model, other_node_bytes, same_node_bytes, calls, spans_nodes):
    """Fallback: modeled communication seconds for one step. An all-to-all that spans nodes
    waits for the slowest (inter-node) link, so its latency is the inter-node one."""
    latency = model.inter_node_latency_s if spans_nodes else model.intra_node_latency_s
    return (other_node_bytes / model.inter_node_bytes_per_s +
            same_node_bytes / model.intra_node_bytes_per_s + calls * latency)


def has_trainer_model(metrics):
    """Whether a run's metrics (key -> history) carry the trainer's modeled times."""
    return bool(metrics.get(MODELED_COMM)) or bool(metrics.get(STEP_MODELED))


def modeled_step_ms(step_ms, measured_comm_ms, modeled_comm_ms, step_modeled=None):
    """The trainer's modeled step time: ``step_modeled_ms`` when logged, else
    step_ms - comm.measured_ms + comm.modeled_ms (None when step_ms is missing)."""
    if step_modeled is not None:
        return step_modeled
    if step_ms is None:
        return None
    return step_ms - (measured_comm_ms or 0.0) + (modeled_comm_ms or 0.0)
