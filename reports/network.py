"""The network model: counted bytes -> modeled cluster communication time.

This is the only place with link parameters. Until runs record a modeled time themselves
(the expert-parallelism issue adds a [topology] network model to the trainer), the report
computes it from what every run already counts:

    modeled step time = measured step time
                        + wire other-node bytes / inter-node bandwidth
                        + wire same-node bytes  / intra-node bandwidth
                        + all-to-all calls x latency

per training step, with the bytes and calls the per-step averages of the run's ``comm.*``
metrics. Wire bytes (what the exchange format puts on the links: padded buffers by default)
rather than logical routed bytes, because the links carry the padding too. Same-worker rows
never touch a link. Deliberately simple and conservative: all traffic of a class is charged
to one link of that class (no overlap of transfers, no overlap with compute), and the
measured step time is that of the one process playing every worker.
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


def comm_seconds_per_step(model, other_node_bytes, same_node_bytes, calls, spans_nodes):
    """Modeled communication seconds for one step. An all-to-all that spans nodes waits for
    the slowest (inter-node) link, so its latency is the inter-node one."""
    latency = model.inter_node_latency_s if spans_nodes else model.intra_node_latency_s
    return (other_node_bytes / model.inter_node_bytes_per_s +
            same_node_bytes / model.intra_node_bytes_per_s + calls * latency)
