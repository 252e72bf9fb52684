"""Per-run numbers and the grouping of seeds into configurations.

A configuration is a run spec without its seed (and sweep id): runs that differ only in the
seed are repeats of one configuration, and figures show their mean with its 95% Student-t
interval over seeds.
"""

import json
import math
from dataclasses import dataclass, field

from reports import stats

from reports.network import COMPUTE_MODELED, MEASURED_COMM, MODELED_COMM, SPEC_COMPUTE_DEFAULTS, \
    STEP_MODELED, comm_seconds_per_step, has_trainer_model, modeled_step_ms, network_of_spec

# Spec keys that do not make a different configuration.
NOT_CONFIG_KEYS = ("seed", "sweep")

# Short names for spec keys in labels.
SHORT_NAMES = {
    "workers": "W", "workers_per_node": "G", "num_experts": "E", "max_steps": "steps",
    "capacity_factor": "cf", "tokens_per_batch": "tok/batch", "gate_expert_drop": "GED",
    "world_size": "ranks", "intra_node_gbps": "intra Gb/s", "inter_node_gbps": "inter Gb/s",
    "intra_node_latency_us": "intra us", "inter_node_latency_us": "inter us",
    "node_nic_gbps": "node NIC Gb/s",
}

# Experts per MoE layer of each size preset (harness/model/sizes.cpp), for num_experts = 0.
PRESET_EXPERTS = {"tiny": 4, "small": 8, "base": 8, "large": 16}

BYTE_KEYS = ("same_worker", "same_node", "other_node", "wire_same_node", "wire_other_node",
             "calls")


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def ci95_half_width(values):
    """Half-width of the 95% Student-t interval of the mean of `values`:
    t_{0.975, n-1} s / sqrt(n), s the sample standard deviation; None with fewer than 2 values.
    The same interval as `moebench runs --group-by --agg ci95` (Note [Interval over seeds] in
    harness/util/stats.h)."""
    n = len(values)
    if n < 2:
        return None
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return stats.t_quantile(0.975, n - 1) * sd / math.sqrt(n)


@dataclass
class Stat:
    """A value over seeds: mean, min, max, how many seeds had it, and the half-width of the
    95% Student-t interval of the mean (None with one seed)."""
    mean: object
    lo: object
    hi: object
    n: int
    ci95: object = None

    @property
    def band_lo(self):
        """The interval's low end (the mean itself with one seed)."""
        if self.mean is None:
            return None
        return self.mean - (self.ci95 or 0.0)

    @property
    def band_hi(self):
        if self.mean is None:
            return None
        return self.mean + (self.ci95 or 0.0)

    @staticmethod
    def of(values):
        values = [v for v in values if v is not None and not (isinstance(v, float) and
                                                              math.isnan(v))]
        if not values:
            return Stat(None, None, None, 0)
        return Stat(sum(values) / len(values), min(values), max(values), len(values),
                    ci95_half_width(values))


@dataclass
class RunSummary:
    run: object
    steps: int = 0
    train_seconds: object = None
    valid_curve: list = field(default_factory=list)  # [(step, wall_s, bleu)]
    final_valid_bleu: object = None
    test_bleu: dict = field(default_factory=dict)  # lang -> BLEU at the last test eval, k = 0
    headline_test: object = None  # mean of the per-language test BLEU (see headline())
    k_curve: dict = field(default_factory=dict)  # k -> headline BLEU at the last step, k > 0
    k_split: str = ""
    bytes_per_step: dict = field(default_factory=dict)  # BYTE_KEYS -> per-step mean
    tokens_per_s: object = None
    # Model FLOPs utilisation (Note [MFU] in harness/train/device_peak.h): per-step mean of the
    # logged mfu (a fraction of the device's peak; on a CPU, of this machine's measured GEMM
    # rate), and peak memory (MB, the last logged).
    mfu: object = None
    peak_mem_mb: object = None
    step_ms: object = None
    # Modeled time (reports/network.py): "trainer" when the run logged comm.modeled_ms, else
    # "report" (the fallback from counted bytes); per-step means of the modeled communication
    # and step time; the link parameters used.
    comm_model: str = ""
    modeled_comm_ms: object = None
    step_modeled_ms: object = None
    network: object = None
    # [(step, cumulative s)]: modeled minus measured training time by `step`
    extra_points: list = field(default_factory=list)
    signatures: set = field(default_factory=set)  # {(signature, decoding)}
    # Modeled compute (trainer metrics compute_modeled_ms / flops_per_step): FLOPs on the
    # spec's device_profile at device_efficiency; then step_modeled_ms is modeled compute +
    # modeled communication, and nothing of the modeled time was measured on this machine.
    compute_modeled: bool = False
    device_profile: str = ""
    device_efficiency: object = None

    def time_basis(self):
        """Where the modeled times come from, in words."""
        if self.compute_modeled:
            eff = "" if self.device_efficiency is None else f" at {self.device_efficiency:g} " \
                "efficiency"
            return f"modeled on cluster: {self.device_profile or '?'}{eff} + modeled network"
        if self.comm_model == "trainer":
            return "compute measured on this machine + modeled network"
        return "measured on this machine + report's network fallback"

    def modeled_extra(self, step):
        """Modeled minus measured training seconds accumulated by `step` (linear within a log
        window, the last window's rate after the last logged step): the modeled communication
        (fallback), or the modeled minus the measured communication (trainer's model)."""
        points = [(0, 0.0)] + self.extra_points
        for (s0, e0), (s1, e1) in zip(points, points[1:]):
            if step <= s1:
                return e0 + (e1 - e0) * (step - s0) / (s1 - s0) if s1 > s0 else e1
        if len(points) >= 2:
            (s0, e0), (s1, e1) = points[-2], points[-1]
            rate = (e1 - e0) / (s1 - s0) if s1 > s0 else 0.0
            return e1 + rate * (step - s1)
        return 0.0

    def modeled_seconds(self, step, wall_s):
        return wall_s + self.modeled_extra(step)

    def reach(self, target):
        """(step, measured s, modeled s) at the first validation with BLEU >= target."""
        if target is None:
            return None
        for step, wall, bleu in self.valid_curve:
            if bleu is not None and bleu >= target:
                return step, wall, self.modeled_seconds(step, wall)
        return None

    def bleu(self):
        """The headline BLEU of the run: test when it has one, else the last validation BLEU;
        both the mean over languages (headline())."""
        if self.headline_test is not None:
            return self.headline_test
        return self.final_valid_bleu


def _history(run, key):
    return run.metrics.get(key, [])


def _weighted_mean(history):
    """Mean per step of a per-window average logged at the end of each window."""
    total, steps, prev = 0.0, 0, 0
    for step, _, value in history:
        window = step - prev
        prev = step
        if value is None or window <= 0:
            continue
        total += value * window
        steps += window
    return total / steps if steps else None


def headline(rows):
    """The headline BLEU of one evaluation (rows of one split, step and k): the mean of the
    per-language BLEU when it has per-language rows, else its lang "all" row. The trainer's
    own "all" row is that mean too; older databases stored there the corpus BLEU of all
    languages pooled, which weights languages by their sentence counts."""
    per_lang = [e["bleu"] for e in rows if e["lang"] != "all" and e["bleu"] is not None]
    if per_lang:
        return sum(per_lang) / len(per_lang)
    for e in rows:
        if e["lang"] == "all":
            return e["bleu"]
    return None


def _headline_by_step(evals, split, k_positive):
    """[(step, wall_s, headline BLEU)] of `split` by step (k = 0), or {k: ...} for k > 0."""
    groups = {}
    for e in evals:
        if e["split"] != split or (e["k"] > 0) != k_positive:
            continue
        groups.setdefault((e["k"], e["step"]), []).append(e)
    return {key: (min(e["wall_s"] for e in rows), headline(rows))
            for key, rows in sorted(groups.items())}


def summarize(run, network):
    s = RunSummary(run=run)
    s.steps = max((h[-1][0] for h in run.metrics.values() if h), default=0)
    ts = _history(run, "train_seconds")
    if ts:
        s.train_seconds = ts[-1][2]
    elif run.metrics:
        s.train_seconds = max(h[-1][1] for h in run.metrics.values() if h)
    valid = _headline_by_step(run.evals, "valid", False)
    s.valid_curve = [(step, wall, bleu) for (_, step), (wall, bleu) in valid.items()]
    if s.valid_curve:
        s.final_valid_bleu = s.valid_curve[-1][2]
    test = [e for e in run.evals if e["split"] == "test" and e["k"] == 0]
    if test:
        last = max(e["step"] for e in test)
        rows = [e for e in test if e["step"] == last]
        s.test_bleu = {e["lang"]: e["bleu"] for e in rows}
        s.headline_test = headline(rows)
    for split in ("test", "valid"):
        with_k = _headline_by_step(run.evals, split, True)
        if with_k:
            last = max(step for _, step in with_k)
            s.k_curve = {k: bleu for (k, step), (_, bleu) in with_k.items() if step == last}
            s.k_split = split
            break
    for e in run.evals:
        s.signatures.add((e["signature"], e["decoding"]))
    names = {"same_worker": "comm.same_worker_bytes", "same_node": "comm.same_node_bytes",
             "other_node": "comm.other_node_bytes", "wire_same_node": "comm.wire_same_node_bytes",
             "wire_other_node": "comm.wire_other_node_bytes", "calls": "comm.calls"}
    for short, key in names.items():
        s.bytes_per_step[short] = _weighted_mean(_history(run, key))
    s.tokens_per_s = mean([v for _, _, v in _history(run, "tokens_per_s")])
    s.step_ms = _weighted_mean(_history(run, "step_ms"))
    s.mfu = _weighted_mean(_history(run, "mfu"))
    mem = _history(run, "peak_mem_mb")
    s.peak_mem_mb = mem[-1][2] if mem else None
    s.compute_modeled = bool(_history(run, COMPUTE_MODELED))
    if s.compute_modeled:
        s.device_profile = str(run.spec.get("device_profile",
                                            SPEC_COMPUTE_DEFAULTS["device_profile"]))
        eff = run.spec.get("device_efficiency", SPEC_COMPUTE_DEFAULTS["device_efficiency"])
    else:
        s.device_profile, eff = "", None
    s.device_efficiency = float(eff) if isinstance(eff, (int, float)) else None
    if has_trainer_model(run.metrics):
        _trainer_model(run, s)
    else:
        _fallback_model(run, s, names, network)
    return s


def _by_step(run, keys):
    """step -> {key: value} over the given metric keys (None values dropped)."""
    by_step = {}
    for key in keys:
        for step, _, value in _history(run, key):
            entry = by_step.setdefault(step, {})
            if value is not None:
                entry[key] = value
    return by_step


def _accumulate(s, per_step_extra):
    """per_step_extra: [(step, extra seconds per step of the window ending at step)]."""
    cumulative, prev = 0.0, 0
    for step, extra in per_step_extra:
        cumulative += extra * max(step - prev, 0)
        prev = step
        s.extra_points.append((step, cumulative))


def _trainer_model(run, s):
    """The trainer's network model: modeled step = step_ms - comm.measured_ms + comm.modeled_ms
    (or step_modeled_ms when logged); see reports/network.py."""
    s.comm_model = "trainer"
    s.network = network_of_spec(run.spec)
    by_step = _by_step(run, ("step_ms", MEASURED_COMM, MODELED_COMM, STEP_MODELED))
    extras, modeled_steps = [], []
    for step in sorted(by_step):
        v = by_step[step]
        step_ms = v.get("step_ms")
        modeled = modeled_step_ms(step_ms, v.get(MEASURED_COMM), v.get(MODELED_COMM),
                                  v.get(STEP_MODELED))
        if step_ms is not None and modeled is not None:
            extra_ms = modeled - step_ms
        else:
            extra_ms = v.get(MODELED_COMM, 0.0) - v.get(MEASURED_COMM, 0.0)
        extras.append((step, extra_ms / 1000.0))
        modeled_steps.append((step, None, modeled))
    _accumulate(s, extras)
    s.modeled_comm_ms = _weighted_mean(_history(run, MODELED_COMM))
    s.step_modeled_ms = _weighted_mean(modeled_steps)


def _fallback_model(run, s, names, network):
    """Databases without the trainer's model: modeled communication from the counted bytes
    with `network` (reports/network.py), added to the measured time."""
    s.comm_model = "report"
    s.network = network
    spans_nodes = int(run.spec.get("workers", 1)) > int(run.spec.get("workers_per_node", 1))
    by_step = _by_step(run, [names[k] for k in ("wire_other_node", "wire_same_node", "calls")])
    extras = []
    for step in sorted(by_step):
        v = by_step[step]
        extras.append((step, comm_seconds_per_step(
            network, v.get(names["wire_other_node"], 0.0), v.get(names["wire_same_node"], 0.0),
            v.get(names["calls"], 0.0), spans_nodes)))
    _accumulate(s, extras)
    comm_ms = _weighted_mean([(step, None, 1000.0 * e) for step, e in extras])
    s.modeled_comm_ms = comm_ms
    if s.step_ms is not None and comm_ms is not None:
        s.step_modeled_ms = s.step_ms + comm_ms


@dataclass
class Config:
    key: str
    method: str
    spec: dict  # without the seed
    label: str = ""
    runs: list = field(default_factory=list)  # RunSummary of finished runs, by seed
    # Seeds of the selection this configuration has no finished run for, with the status of
    # its run when there is one: ["3", "2 (failed)"] (as `moebench runs --group-by` shows).
    missing: list = field(default_factory=list)

    def seeds(self):
        return sorted(r.run.seed for r in self.runs)

    def by_seed(self):
        return {r.run.seed: r for r in self.runs}

    def knob(self, name, default=None):
        return self.spec.get("knobs", {}).get(name, default)

    def num_experts(self):
        n = int(self.spec.get("num_experts", 0) or 0)
        return n if n > 0 else PRESET_EXPERTS.get(self.spec.get("size"), 0)

    def stat(self, fn):
        return Stat.of([fn(r) for r in self.runs])


def config_spec(run):
    spec = dict(run.spec)
    for key in NOT_CONFIG_KEYS:
        spec.pop(key, None)
    spec.setdefault("method", run.method)
    spec.setdefault("size", run.size)
    return spec


def config_key(run):
    return json.dumps(config_spec(run), sort_keys=True)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def missing_seeds(config, selection):
    """The seeds of `selection` (Run records of every status) that `config` has no finished
    run for, ascending, each with the status of the configuration's run of that seed when it
    has one: "3", "2 (failed)". The notion of `moebench runs --group-by` (RunGroup::missing in
    harness/sweep/run_groups.h)."""
    have = set(config.seeds())
    status = {run.seed: run.status for run in selection
              if run.status != "finished" and config_key(run) == config.key}
    return [f"{seed} ({status[seed]})" if seed in status else str(seed)
            for seed in sorted({run.seed for run in selection}) if seed not in have]


def group_configs(summaries, selection=None):
    """Finished runs grouped by configuration, labelled by what tells them apart. `selection`:
    every run of the report (any status), for each configuration's missing seeds (default: the
    runs of `summaries`)."""
    configs = {}
    for s in summaries:
        key = config_key(s.run)
        if key not in configs:
            configs[key] = Config(key=key, method=s.run.method, spec=config_spec(s.run))
        configs[key].runs.append(s)
    ordered = sorted(configs.values(), key=lambda c: (c.method, c.key))
    base_keys = set()
    for c in ordered:
        base_keys |= {k for k in c.spec if k not in ("method", "knobs")}
    varying = sorted(k for k in base_keys
                     if len({json.dumps(c.spec.get(k), sort_keys=True) for c in ordered}) > 1)
    for c in ordered:
        same_method = [o for o in ordered if o.method == c.method]
        knob_names = set()
        for o in same_method:
            knob_names |= set(o.spec.get("knobs", {}))
        varying_knobs = sorted(k for k in knob_names
                               if len({o.knob(k) for o in same_method}) > 1)
        # A key this configuration leaves at its default (absent from its spec: fields added
        # after the first release are stored only when set; an empty list) is not shown: the
        # configurations that set it are labelled by their value.
        parts = [f"{SHORT_NAMES.get(k, k)}={_fmt(c.spec.get(k))}" for k in varying
                 if c.spec.get(k) not in (None, [], "")]
        parts += [f"{SHORT_NAMES.get(k, k)}={c.knob(k)}" for k in varying_knobs]
        c.label = c.method + (" " + " ".join(parts) if parts else "")
        c.runs.sort(key=lambda r: r.run.seed)
    runs = [s.run for s in summaries] if selection is None else selection
    for c in ordered:
        c.missing = missing_seeds(c, runs)
    return ordered


def aggregate_curve(curves):
    """curves: one [(step, x, y)] per seed -> [(step, mean x, mean y, low, high, n)] for the
    steps at least one seed has; low and high bound the 95% Student-t interval of the mean
    over the seeds that have the step (both the mean with one seed)."""
    by_step = {}
    for curve in curves:
        for step, x, y in curve:
            if y is None or x is None:
                continue
            by_step.setdefault(step, []).append((x, y))
    out = []
    for step in sorted(by_step):
        xs = [p[0] for p in by_step[step]]
        ys = [p[1] for p in by_step[step]]
        my = sum(ys) / len(ys)
        half = ci95_half_width(ys) or 0.0
        out.append((step, sum(xs) / len(xs), my, my - half, my + half, len(ys)))
    return out


def default_target_bleu(configs, fraction=0.8):
    """fraction x the median over configurations of their mean headline validation BLEU; None
    when no configuration has a positive one."""
    finals = []
    for c in configs:
        st = c.stat(lambda r: r.final_valid_bleu)
        if st.mean is not None:
            finals.append(st.mean)
    finals.sort()
    if not finals:
        return None
    mid = len(finals) // 2
    median = finals[mid] if len(finals) % 2 else (finals[mid - 1] + finals[mid]) / 2
    if median <= 0:
        return None
    return round(fraction * median, 2)
