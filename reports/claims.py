"""The claims check: each seed paper's headline claim (shared METHODS.md section 8), what this
sweep measured for it, and a verdict.

Verdicts:
- "supported": every comparison this sweep can make goes the claimed way;
- "not supported": at least one goes the other way (the row says how many);
- "not measured by this sweep": the runs it needs are missing (the row says which).

Comparisons are between configurations that share every setting but the method (and the knobs
the claim names), seed by seed where both have the seed (paired), else mean against mean.
The effect size is the mean paired difference (or ratio, for times and bytes). Significance
on test BLEU needs per-sentence outputs; see reports/README.md "Significance".
"""

import math
from dataclasses import dataclass

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
NOT_MEASURED = "not measured by this sweep"

NO_OUTPUTS = "not measured (no per-sentence outputs stored)"
NOT_BLEU = "n/a (not a BLEU comparison)"

# Gating dropout: how far the measured cross-node byte ratio may be from 1 - p and still
# count as "(1 - p)x". With L MoE layers and S steps the ratio's standard deviation is about
# sqrt(p (1 - p) / (L S)): 0.05 for 2 layers x 40 steps at p = 0.3.
BYTE_RATIO_TOLERANCE = 0.1
# "Saturates": BLEU at the largest k at most this much above BLEU at the training k.
SATURATION_BLEU = 1.0

GD_KNOBS = ("p", "gate_expert_drop", "base", "base_router", "router", "ignore_gate_weight")


@dataclass
class Claim:
    id: str
    paper: str
    statement: str
    measure: str  # the metric this sweep compares


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    measured: str  # direction and effect size, or ""
    significance: str
    missing: str  # what would measure it, when not measured


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _base(config, ignore_knobs=()):
    spec = {k: v for k, v in config.spec.items() if k not in ("method", "knobs")}
    return repr(sorted(spec.items(), key=str))


def matched_pairs(configs, a, b, same_knobs=()):
    """(A, B) configurations equal in every setting but method and knobs, where `a` and `b`
    select the sides and the knobs in `same_knobs` ("shared": every knob both have, other
    than gating dropout's own) are equal."""
    out = []
    for ca in configs:
        if not a(ca) or not ca.runs:
            continue
        for cb in configs:
            if cb is ca or not b(cb) or not cb.runs or _base(ca) != _base(cb):
                continue
            names = same_knobs
            if same_knobs == "shared":
                names = (set(ca.spec.get("knobs", {})) & set(cb.spec.get("knobs", {}))) - set(
                    GD_KNOBS)
            if all(_num(ca.knob(k)) == _num(cb.knob(k)) for k in names):
                out.append((ca, cb))
    return out


@dataclass
class Comparison:
    a: object
    b: object
    a_mean: object
    b_mean: object
    diff: object  # mean of paired A - B, or A mean - B mean
    n: int
    paired: bool
    holds: bool
    only: str = ""  # "A" / "B": only that side has a value (e.g. reached the target)


def compare(pair, value, higher_is_better):
    """Compares A with B on value(run summary) -> number or None."""
    ca, cb = pair
    sa, sb = ca.by_seed(), cb.by_seed()
    common = sorted(set(sa) & set(sb))
    va = [value(sa[s]) for s in common] if common else [value(r) for r in ca.runs]
    vb = [value(sb[s]) for s in common] if common else [value(r) for r in cb.runs]
    if common:
        both = [(x, y) for x, y in zip(va, vb) if x is not None and y is not None]
    else:
        both = []
    xa = [x for x in va if x is not None]
    xb = [y for y in vb if y is not None]
    if not xa and not xb:
        return None
    if not xa or not xb:
        # One side never got a value (e.g. never reached the target): the other side wins
        # when a value is good to have.
        only = "A" if xa else "B"
        return Comparison(ca, cb, _mean(xa), _mean(xb), None, max(len(xa), len(xb)), False,
                          holds=(only == "A"), only=only)
    if both:
        diff = sum(x - y for x, y in both) / len(both)
        a_mean, b_mean, n, paired = _mean([x for x, _ in both]), _mean([y for _, y in both]), \
            len(both), True
    else:
        a_mean, b_mean, n, paired = _mean(xa), _mean(xb), min(len(xa), len(xb)), False
        diff = a_mean - b_mean
    holds = diff > 0 if higher_is_better else diff < 0
    return Comparison(ca, cb, a_mean, b_mean, diff, n, paired, holds)


def _mean(values):
    return sum(values) / len(values) if values else None


def _f(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    return f"{value:.{digits}f}"


def _describe(c, unit, ratio=False):
    who = f"{c.a.label} vs {c.b.label}"
    if c.only:
        side = c.a.label if c.only == "A" else c.b.label
        return f"{who}: only {side} has a value ({unit})"
    seeds = f"{c.n} seed{'s' if c.n != 1 else ''}{' paired' if c.paired else ''}"
    if ratio and c.b_mean:
        return (f"{who}: {_f(c.a_mean)} vs {_f(c.b_mean)} {unit} (ratio "
                f"{c.a_mean / c.b_mean:.2f}; {seeds})")
    return f"{who}: {c.diff:+.2f} {unit} ({_f(c.a_mean)} vs {_f(c.b_mean)}; {seeds})"


def _verdict(comparisons):
    held = sum(1 for c in comparisons if c.holds)
    if held == len(comparisons):
        return SUPPORTED, ""
    return NOT_SUPPORTED, f" [{held} of {len(comparisons)} comparisons go the claimed way]"


def _is(method, **knobs):
    def pick(config):
        if config.method != method:
            return False
        for name, test in knobs.items():
            if not test(_num(config.knob(name))):
                return False
        return True
    return pick


def _cf(config):
    """An expert-choice or token-choice capacity factor, whichever knob the method has."""
    for name in ("capacity_factor", "c", "cf"):
        if config.knob(name) is not None:
            return _num(config.knob(name))
    return None


class Checker:
    def __init__(self, configs, target, significance):
        self.configs = configs
        self.target = target
        # significance(list of (run A, run B)) -> text, for BLEU comparisons.
        self.significance = significance

    # ---- building blocks ----

    def pairwise(self, claim, a, b, value, higher, unit, need, same_knobs=(), ratio=False,
                 bleu=False):
        pairs = matched_pairs(self.configs, a, b, same_knobs)
        comps = [c for c in (compare(p, value, higher) for p in pairs) if c is not None]
        if not comps:
            return ClaimResult(claim, NOT_MEASURED, "", "-",
                               need + near_miss(self.configs, a, b, same_knobs))
        verdict, tail = _verdict(comps)
        measured = "; ".join(_describe(c, unit, ratio) for c in comps) + tail
        sig = NOT_BLEU
        if bleu:
            run_pairs = []
            for c in comps:
                sa, sb = c.a.by_seed(), c.b.by_seed()
                run_pairs += [(sa[s].run, sb[s].run) for s in sorted(set(sa) & set(sb))]
            sig = self.significance(run_pairs) if run_pairs else \
                "not measured (no common seeds to pair)"
        return ClaimResult(claim, verdict, measured, sig, "")

    def trend(self, claim, select, x_of, need, group_ignore=("size", "num_experts")):
        """BLEU rises with x among configurations of `select` that differ only in x."""
        groups = {}
        for c in self.configs:
            if not select(c) or not c.runs:
                continue
            spec = {k: v for k, v in c.spec.items() if k not in group_ignore}
            groups.setdefault(repr(sorted(spec.items(), key=str)), []).append(c)
        parts, held, total = [], 0, 0
        for group in groups.values():
            pts = sorted({x_of(c): c for c in group}.items())
            if len(pts) < 2:
                continue
            means = [(x, c.stat(lambda r: r.bleu()).mean) for x, c in pts]
            means = [(x, m) for x, m in means if m is not None]
            if len(means) < 2:
                continue
            total += 1
            rising = all(m2 > m1 for (_, m1), (_, m2) in zip(means, means[1:]))
            held += rising
            parts.append(", ".join(f"{x:g}: {m:.2f}" for x, m in means) +
                         (" (rising)" if rising else " (not rising)"))
        if not total:
            return ClaimResult(claim, NOT_MEASURED, "", "-", need)
        verdict = SUPPORTED if held == total else NOT_SUPPORTED
        return ClaimResult(claim, verdict, "BLEU by " + claim.measure + ": " + "; ".join(parts),
                           NO_OUTPUTS, "")

    def k_curves(self, select):
        out = []
        for c in self.configs:
            if not select(c):
                continue
            ks = sorted({k for r in c.runs for k in r.k_curve})
            if len(ks) < 2:
                continue
            means = [(k, c.stat(lambda r, k=k: r.k_curve.get(k)).mean) for k in ks]
            out.append((c, [(k, m) for k, m in means if m is not None]))
        return out

    # ---- the claims ----

    def reach_time(self, r):
        hit = r.reach(self.target)
        return None if hit is None else hit[2]

    def reach_steps(self, r):
        hit = r.reach(self.target)
        return None if hit is None else float(hit[0])

    def target_need(self, text):
        if self.target is None:
            return text + "; and a target BLEU (no validation BLEU above 0 in this sweep)"
        return text

    def run(self):
        bleu = lambda r: r.bleu()  # noqa: E731
        results = []
        c = CLAIMS

        results.append(self.pairwise(
            c[0], _is("switch"), _is("gshard"), self.reach_time, False, "s to target (modeled)",
            self.target_need("switch and gshard runs with the same settings and capacity_factor"),
            same_knobs=("capacity_factor",), ratio=True))
        results.append(self.pairwise(
            c[1], _is("gshard", capacity_factor=lambda v: v == 2.0),
            _is("switch", capacity_factor=lambda v: v == 2.0), bleu, True, "BLEU",
            "gshard and switch runs at capacity_factor=2.0 with the same settings", bleu=True))
        results.append(self.pairwise(
            c[2], _is("switch", capacity_factor=lambda v: isinstance(v, float) and v <= 1.0),
            _is("gshard"), bleu, True, "BLEU",
            "switch and gshard runs at capacity_factor <= 1.0 with the same settings",
            same_knobs=("capacity_factor",), bleu=True))
        results.append(self.trend(
            c[3], lambda x: x.method == "switch", lambda x: x.num_experts(),
            "switch runs that differ only in the number of experts (--num-experts)",
            group_ignore=("num_experts",)))
        results.append(self.trend(
            c[4], lambda x: x.method == "gshard", lambda x: x.num_experts(),
            "gshard runs that differ only in the number of experts (--num-experts)",
            group_ignore=("num_experts",)))
        results.append(self.trend(
            c[5], lambda x: x.method == "gshard", lambda x: float(x.runs[0].run.params_total),
            "gshard runs that differ only in model size (--size)", group_ignore=("size",)))
        results.append(self.pairwise(
            c[6], _is("expert_choice"), _is("gshard"), self.reach_steps, False,
            "steps to target", self.target_need(
                "expert_choice and gshard runs with the same settings"), ratio=True))
        results.append(self.pairwise(
            c[7], _is("expert_choice"), _is("gshard"), lambda r: r.step_ms, False,
            "ms per step (measured)", "expert_choice and gshard runs with the same settings",
            ratio=True))
        ec_top1 = self.pairwise(c[8], _is("expert_choice"), _is("switch"), bleu, True, "BLEU",
                                "expert_choice, switch and gshard runs with the same settings",
                                bleu=True)
        ec_top2 = self.pairwise(c[8], _is("expert_choice"), _is("gshard"), bleu, True, "BLEU",
                                "expert_choice, switch and gshard runs with the same settings",
                                bleu=True)
        results.append(_both(c[8], ec_top1, ec_top2))
        low_ec = lambda x: x.method == "expert_choice" and isinstance(_cf(x), float) and \
            _cf(x) <= 1.0  # noqa: E731
        results.append(self.pairwise(
            c[9], low_ec, _is("switch"), bleu, True, "BLEU",
            "expert_choice runs at capacity factor <= 1 and switch runs with the same settings",
            bleu=True))
        results.append(self.pairwise(
            c[10], _is("thor"), _is("switch"), bleu, True, "BLEU",
            "thor and switch runs with the same settings", bleu=True))
        results.append(self.smoe_monotone(c[11]))
        results.append(self.learned_saturate(c[12]))
        results.append(self.pairwise(
            c[13], _is("smoe_dropout"), _is("dense"), bleu, True, "BLEU",
            "a dense Transformer baseline at equal parameter count (moebench has no dense "
            "method yet)", bleu=True))
        gd = lambda x: x.method == "gating_dropout" and str(x.knob("gate_expert_drop", "false")) \
            .lower() in ("false", "0")  # noqa: E731
        results.append(self.pairwise(
            c[14], gd, self.base_of, self.reach_time, False, "s to target (modeled)",
            self.target_need("gating_dropout runs and runs of its base router with the same "
                             "settings"), same_knobs="shared", ratio=True))
        results.append(self.gd_bytes(c[15], gd))
        results.append(self.pairwise(
            c[16], gd, self.base_of, bleu, True, "BLEU",
            "gating_dropout runs and runs of its base router with the same settings",
            same_knobs="shared", bleu=True))
        ged = lambda x: x.method == "gating_dropout" and not gd(x)  # noqa: E731
        results.append(self.pairwise(
            c[17], ged, gd, lambda r: r.tokens_per_s, True, "tokens/s (measured)",
            "gating_dropout runs with gate_expert_drop=true and =false, same settings",
            same_knobs=("p",), ratio=True))
        return results

    def base_of(self, config):
        """Selects configurations that can be a gating_dropout run's base router."""
        bases = set()
        for c in self.configs:
            if c.method == "gating_dropout":
                for name in ("base", "base_router", "router"):
                    if c.knob(name) is not None:
                        bases.add(c.knob(name))
                        break
                else:
                    bases.add("switch")
        return config.method in bases

    def gd_bytes(self, claim, gd):
        pairs = matched_pairs(self.configs, gd, self.base_of, "shared")
        parts, held, total = [], 0, 0
        for ca, cb in pairs:
            p = gd_drop_probability(ca)
            a = ca.stat(lambda r: r.bytes_per_step.get("other_node")).mean
            b = cb.stat(lambda r: r.bytes_per_step.get("other_node")).mean
            if not isinstance(p, float) or a is None or not b:
                continue
            total += 1
            ratio = a / b
            ok = abs(ratio - (1 - p)) <= BYTE_RATIO_TOLERANCE
            held += ok
            parts.append(f"{ca.label} vs {cb.label}: {a / 1e6:.3f} vs {b / 1e6:.3f} MB/step, "
                         f"ratio {ratio:.3f} (1-p = {1 - p:.2f}; tolerance "
                         f"{BYTE_RATIO_TOLERANCE})")
        if not total:
            return ClaimResult(claim, NOT_MEASURED, "", "-",
                               "gating_dropout and base-router runs with the same settings and "
                               "workers spanning nodes (--workers > --workers-per-node), so "
                               "that there are cross-node bytes" +
                               near_miss(self.configs, gd, self.base_of, "shared"))
        return ClaimResult(claim, SUPPORTED if held == total else NOT_SUPPORTED,
                           "; ".join(parts), NOT_BLEU, "")

    def smoe_monotone(self, claim):
        curves = self.k_curves(lambda x: x.method == "smoe_dropout")
        if not curves:
            return ClaimResult(claim, NOT_MEASURED, "", "-",
                               "smoe_dropout runs evaluated at two or more k (evals with k > 0)")
        parts, held = [], 0
        for c, means in curves:
            rising = all(m2 >= m1 for (_, m1), (_, m2) in zip(means, means[1:]))
            held += rising
            parts.append(f"{c.label}: " + ", ".join(f"k={k}: {m:.2f}" for k, m in means) +
                         (" (monotone)" if rising else " (not monotone)"))
        return ClaimResult(claim, SUPPORTED if held == len(curves) else NOT_SUPPORTED,
                           "; ".join(parts), NO_OUTPUTS, "")

    def learned_saturate(self, claim):
        curves = self.k_curves(lambda x: x.method in ("switch", "gshard", "thor"))
        if not curves:
            return ClaimResult(claim, NOT_MEASURED, "", "-",
                               "switch, gshard or thor runs evaluated at two or more k")
        parts, held = [], 0
        for c, means in curves:
            gain = means[-1][1] - means[0][1]
            ok = gain <= SATURATION_BLEU
            held += ok
            parts.append(f"{c.label}: BLEU k={means[0][0]} -> k={means[-1][0]}: {gain:+.2f}")
        return ClaimResult(claim, SUPPORTED if held == len(curves) else NOT_SUPPORTED,
                           "; ".join(parts) + f" (saturates: gain <= {SATURATION_BLEU} BLEU)",
                           NO_OUTPUTS, "")


def gd_drop_probability(config):
    """The knob p; a negative p means the method's default: 0.3, or 0.2 with
    gate_expert_drop (METHODS.md section 6, "Rates")."""
    p = _num(config.knob("p"))
    if not isinstance(p, float):
        return None
    if p < 0:
        ged = str(config.knob("gate_expert_drop", "false")).lower() in ("true", "1")
        return 0.2 if ged else 0.3
    return p


def near_miss(configs, a, b, same_knobs):
    """When both sides have runs but none match: which settings keep them apart."""
    sides_a = [c for c in configs if a(c) and c.runs]
    sides_b = [c for c in configs if b(c) and c.runs and c not in sides_a]
    if not sides_a or not sides_b:
        return ""
    best = None
    for ca in sides_a:
        for cb in sides_b:
            diffs = []
            keys = (set(ca.spec) | set(cb.spec)) - {"method", "knobs"}
            for k in sorted(keys):
                if ca.spec.get(k) != cb.spec.get(k):
                    diffs.append(f"{k} {ca.spec.get(k)} vs {cb.spec.get(k)}")
            names = same_knobs
            if same_knobs == "shared":
                names = (set(ca.spec.get("knobs", {})) & set(cb.spec.get("knobs", {}))) - set(
                    GD_KNOBS)
            for k in sorted(names):
                if _num(ca.knob(k)) != _num(cb.knob(k)):
                    diffs.append(f"{k} {ca.knob(k)} vs {cb.knob(k)}")
            if diffs and (best is None or len(diffs) < len(best[2])):
                best = (ca, cb, diffs)
    if best is None:
        return ""
    ca, cb, diffs = best
    return f" (closest: {ca.label} vs {cb.label} differ in {', '.join(diffs)})"


def _both(claim, first, second):
    if first.verdict == NOT_MEASURED or second.verdict == NOT_MEASURED:
        missing = first.missing or second.missing
        measured = "; ".join(x.measured for x in (first, second) if x.measured)
        return ClaimResult(claim, NOT_MEASURED, measured, first.significance, missing)
    verdict = SUPPORTED if first.verdict == second.verdict == SUPPORTED else NOT_SUPPORTED
    sig = first.significance if first.significance == second.significance else \
        f"{first.significance}; {second.significance}"
    return ClaimResult(claim, verdict, first.measured + "; " + second.measured, sig, "")


CLAIMS = [
    Claim("switch.time", "Switch Transformer (Table 1)",
          "Switch beats top-2 (GShard) on quality per unit time: it reaches the target "
          "quality sooner in wall-clock at the same capacity factor",
          "modeled cluster seconds to the target BLEU"),
    Claim("switch.top2_cf2", "Switch Transformer (Table 1)",
          "At capacity factor 2.0, top-2 is slightly better per step than Switch",
          "BLEU after the same number of steps"),
    Claim("switch.low_cf", "Switch Transformer (Table 1)",
          "At low capacity factors (1.0) Switch is better than top-2",
          "BLEU after the same number of steps"),
    Claim("switch.experts", "Switch Transformer (Fig. 4)",
          "Quality per step improves as the number of experts grows",
          "number of experts"),
    Claim("gshard.experts", "GShard (Table 3)",
          "More experts give more BLEU (with diminishing returns)", "number of experts"),
    Claim("gshard.depth", "GShard (Table 3)",
          "Deeper (larger) models give more BLEU", "total parameters"),
    Claim("ec.steps", "Expert Choice (Fig. 2a)",
          "Expert Choice (cf 2) converges in fewer steps than top-2 (paper: less than half)",
          "training steps to the target BLEU"),
    Claim("ec.step_time", "Expert Choice (Fig. 2a)",
          "A top-2 step is about 20% slower than an Expert Choice step",
          "measured ms per training step"),
    Claim("ec.quality", "Expert Choice (Table 2)",
          "Expert Choice beats top-1 (Switch) and top-2 (GShard) in quality", "BLEU"),
    Claim("ec.low_cf", "Expert Choice (Fig. 4a)",
          "Expert Choice at capacity factor 1 (even 0.5) still beats top-1", "BLEU"),
    Claim("thor.switch", "THOR (abstract)",
          "THOR beats Switch in BLEU (paper: by about 2 BLEU)", "BLEU"),
    Claim("smoe.monotone_k", "SMoE-Dropout",
          "SMoE-Dropout's BLEU rises monotonically with the number of experts k at inference",
          "BLEU at each k"),
    Claim("smoe.learned_saturate", "SMoE-Dropout (Table 1 narrative)",
          "Learned routers and THOR saturate or degrade as k grows beyond the training k",
          "BLEU at each k"),
    Claim("smoe.dense", "SMoE-Dropout",
          "SMoE-Dropout beats dense training at equal parameter count", "BLEU"),
    Claim("gd.time", "Gating Dropout (abstract)",
          "Gating Dropout reaches the target BLEU sooner in wall-clock than its base router",
          "modeled cluster seconds to the target BLEU"),
    Claim("gd.bytes", "Gating Dropout (section 6 accounting)",
          "Gating Dropout sends (1-p)x its base router's cross-node bytes",
          "other-node bytes per step"),
    Claim("gd.bleu", "Gating Dropout (abstract)",
          "Gating Dropout gets better BLEU than its base router", "BLEU"),
    Claim("gd.ged_fastest", "Gating Dropout",
          "Gate-Expert-Drop is the fastest variant (it also skips the expert)",
          "measured tokens per second"),
]


def check(configs, target, significance):
    return Checker(configs, target, significance).run()
