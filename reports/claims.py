"""The claims check: each seed paper's headline claim (shared METHODS.md section 8), what this
sweep measured for it, and a verdict a reviewer can accept (reports/README.md "Claims").

Verdicts:
- "supported": every comparison goes the claimed way and the claim's test is significant at
  level alpha after Holm-Bonferroni adjustment over all the claims tested in this report;
- "direction agrees, not significant": the direction agrees but the (adjusted) p-value is
  above alpha, or no test was possible (the significance column says why, e.g. one seed);
- "opposite": at least one comparison goes the other way (the row says which);
- "not measured": the runs it needs are missing (the row says which).

A comparison pairs two configurations that share every setting but the method (and the knobs
the claim names), seed by seed: only seeds both have are used.

Tests (one p-value per comparison; a claim with several comparisons takes the largest, the
intersection-union test, so that "supported" means every comparison is significant):
- BLEU claims: a one-sided paired bootstrap of the headline BLEU (the mean over languages,
  each language with its tokenizer) over the pooled test sentences of every common seed, run
  by the C++ BLEU (`moebench bleu --langs --paired-bs --paired-bs-pvalue one-sided`;
  reports/bleu_test.py). Effect: the mean over seeds of the paired difference in headline
  test BLEU, with a Student-t 95% interval over seeds (none with one seed) and the
  sentence-level 95% interval of the bootstrap (the 2.5/97.5% points of the pooled headline
  difference over the resamples: test-set sampling only, also with one seed).
- Times, bytes, throughput and per-run BLEU thresholds: the exact one-sided sign-flip test over
  the per-seed paired differences (of log ratios for times, bytes and throughput). With n seeds
  the smallest possible p is 1/2^n, so fewer than 5 seeds can never be significant at 0.05.
  Effect: the geometric-mean ratio (or mean difference) with a Student-t 95% interval over
  seeds.
"""

import math
from dataclasses import dataclass, field

from reports import stats

SUPPORTED = "supported"
NOT_SIGNIFICANT = "direction agrees, not significant"
OPPOSITE = "opposite"
NOT_MEASURED = "not measured"
VERDICTS = (SUPPORTED, NOT_SIGNIFICANT, OPPOSITE, NOT_MEASURED)

DEFAULT_ALPHA = 0.05

NO_OUTPUTS = "no per-sentence outputs stored"

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
class Comparison:
    """One matched pair of configurations (or of k values within one), over its common
    seeds. `diffs`: per-seed differences oriented so that > 0 is the claimed way."""
    label: str
    seeds: list
    text: str  # the effect and its interval, in words
    agrees: bool
    p: object = None  # one-sided p-value, None when no test was possible
    test: str = ""  # the test and its p-value, or why there is none
    effect: object = None
    lo: object = None  # Student-t 95% interval over seeds
    hi: object = None
    # BLEU: the bootstrap's sentence-level 95% interval of the pooled headline difference
    sentence_lo: object = None
    sentence_hi: object = None


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    measured: str  # comparisons, effects and intervals, or ""
    significance: str
    missing: str  # what would measure it, when not measured
    p: object = None  # the claim's p-value (largest over its comparisons)
    p_holm: object = None
    seeds: int = 0  # the fewest common seeds of its comparisons
    comparisons: list = field(default_factory=list)


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


# Spec keys that are not settings of a comparison: eval_k only adds evaluations at other k
# after training (the trained model and its default-k test BLEU are the same without it).
NOT_COMPARED_KEYS = ("method", "knobs", "eval_k")


def _base(config, ignore=()):
    spec = {k: v for k, v in config.spec.items() if k not in NOT_COMPARED_KEYS + ignore}
    return repr(sorted(spec.items(), key=str))


@dataclass(frozen=True)
class SharedKnobsBut:
    """same_knobs of matched_pairs: every knob both sides have ("shared") except these."""
    names: tuple


def _same_knob_names(ca, cb, same_knobs):
    if same_knobs == "shared" or isinstance(same_knobs, SharedKnobsBut):
        shared = set(ca.spec.get("knobs", {})) & set(cb.spec.get("knobs", {}))
        but = same_knobs.names if isinstance(same_knobs, SharedKnobsBut) else ()
        return shared - set(GD_KNOBS) - set(but)
    return same_knobs


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
            if all(_num(ca.knob(k)) == _num(cb.knob(k))
                   for k in _same_knob_names(ca, cb, same_knobs)):
                out.append((ca, cb))
    return out


def _f(value, digits=2):
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _p(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 0.001 else f"{value:.3f}"


def _seeds_text(n):
    return f"{n} seed{'s' if n != 1 else ''}"


def _interval_text(lo, hi, fmt, n):
    if lo is None:
        return f"no interval with {_seeds_text(n)}"
    return f"95% CI [{fmt(lo)}, {fmt(hi)}] over {_seeds_text(n)}"


def sign_flip_text(p, n, alpha):
    text = f"exact one-sided sign-flip test over {_seeds_text(n)}: p = {_p(p)}"
    if stats.smallest_sign_flip_p(n) > alpha:
        text += (f" (the smallest p possible with {_seeds_text(n)} is "
                 f"{_p(stats.smallest_sign_flip_p(n))} > alpha {alpha:g}: cannot be "
                 f"significant; needs at least {stats.min_seeds_for(alpha)} seeds)")
    return text


def _oriented(x, y, higher, ratio):
    """The per-seed difference, > 0 when x is better than y."""
    if ratio:
        if x is None or y is None or x <= 0 or y <= 0:
            return None
        return math.log(x / y) if higher else math.log(y / x)
    return x - y if higher else y - x


def seed_comparison(ca, cb, value, higher, unit, alpha, ratio=False, reach=False,
                    label=None):
    """A against B on value(run summary) per common seed, tested by the sign-flip test.
    `reach`: a value is good to have (time to target): a seed where only one side has one
    counts for that side, as a difference larger than any measured one. None when no seed
    has values on both sides (or, with `reach`, on either side)."""
    sa, sb = ca.by_seed(), cb.by_seed()
    label = label or f"{ca.label} vs {cb.label}"
    finite, censored, seeds, xs, ys = [], [], [], [], []
    for s in sorted(set(sa) & set(sb)):
        x, y = value(sa[s]), value(sb[s])
        if x is not None and y is not None:
            d = _oriented(x, y, higher, ratio)
            if d is None:
                continue
            finite.append(d)
            xs.append(x)
            ys.append(y)
            seeds.append(s)
        elif reach and (x is not None or y is not None):
            censored.append((s, x is not None))
            seeds.append(s)
    if not finite and not censored:
        return None
    big = 1.0 + max((abs(d) for d in finite), default=0.0)
    diffs = finite + [big if a_has else -big for _, a_has in censored]
    p = stats.sign_flip_p(diffs)
    n = len(diffs)
    parts = []
    if finite:
        if ratio:
            # Effect: the geometric-mean ratio A/B over seeds, interval from the log ratios.
            logs = [math.log(x / y) for x, y in zip(xs, ys)]
            m, lo, hi = stats.t_interval(logs)
            effect, elo, ehi = math.exp(m), (math.exp(lo) if lo is not None else None), \
                (math.exp(hi) if hi is not None else None)
            interval = _interval_text(elo, ehi, lambda v: f"{v:.3f}", len(logs))
            parts.append(f"ratio {effect:.3f} ({interval}); "
                         f"{_f(sum(xs) / len(xs))} vs {_f(sum(ys) / len(ys))} {unit}")
        else:
            raw = [x - y for x, y in zip(xs, ys)]
            effect, elo, ehi = stats.t_interval(raw)
            interval = _interval_text(elo, ehi, lambda v: f"{v:+.2f}", len(raw))
            parts.append(f"{effect:+.2f} {unit} ({interval}); "
                         f"{_f(sum(xs) / len(xs))} vs {_f(sum(ys) / len(ys))}")
    else:
        effect = elo = ehi = None
    for s, a_has in censored:
        parts.append(f"seed {s}: only {ca.label if a_has else cb.label} has a value ({unit})")
    agrees = sum(diffs) > 0
    return Comparison(label=label, seeds=seeds, text=f"{label}: " + "; ".join(parts),
                      agrees=agrees, p=p, test=sign_flip_text(p, n, alpha), effect=effect,
                      lo=elo, hi=ehi)


def _bleu_test_text(result, n):
    """The significance text of a BleuTest over n seeds."""
    if result.p is None:
        return f"no test: {result.note}"
    # Each language's BLEU is of its sentences pooled over the seeds; the headline their mean.
    what = "headline = mean of per-language pooled BLEU" if result.languages else "pooled BLEU"
    text = (f"one-sided paired bootstrap over {result.sentences} pooled test sentences of "
            f"{_seeds_text(n)} ({result.note}): {what} {result.bleu_a:.2f} vs "
            f"{result.bleu_b:.2f}, p = {_p(result.p)}")
    if n == 1:
        text += " (one seed: test-set sampling only, not training variance)"
    return text


def _sentence_interval(result):
    if result.p is None:
        return {}
    return {"sentence_lo": result.diff_lo, "sentence_hi": result.diff_hi}


def _bleu_effect_text(label, effect, lo, hi, n, result, xs, ys):
    """The measured text of a BLEU comparison: the effect over seeds, its Student-t interval
    over seeds and, when the bootstrap ran, its sentence-level 95% interval."""
    text = f"{label}: {effect:+.2f} BLEU ({_interval_text(lo, hi, lambda v: f'{v:+.2f}', n)}"
    if result.p is not None and result.diff_lo is not None:
        text += (f"; sentence-level 95% CI [{result.diff_lo:+.2f}, {result.diff_hi:+.2f}] of "
                 f"the pooled difference {result.bleu_a - result.bleu_b:+.2f}, paired bootstrap")
    return text + f"); {_f(sum(xs) / n)} vs {_f(sum(ys) / n)}"


def bleu_comparison(ca, cb, value, bleu_test, alpha, k_a=0, k_b=0, label=None):
    """A against B on headline test BLEU per common seed; the test is the pooled paired
    bootstrap of bleu_test over those seeds' sentences."""
    sa, sb = ca.by_seed(), cb.by_seed()
    label = label or f"{ca.label} vs {cb.label}"
    seeds, diffs, xs, ys, pairs = [], [], [], [], []
    for s in sorted(set(sa) & set(sb)):
        x, y = value(sa[s]), value(sb[s])
        if x is None or y is None:
            continue
        seeds.append(s)
        xs.append(x)
        ys.append(y)
        diffs.append(x - y)
        pairs.append(((sa[s].run, k_a), (sb[s].run, k_b)))
    if not seeds:
        return None
    effect, lo, hi = stats.t_interval(diffs)
    n = len(seeds)
    result = bleu_test(pairs)
    text = _bleu_effect_text(label, effect, lo, hi, n, result, xs, ys)
    return Comparison(label=label, seeds=seeds, text=text, agrees=effect > 0, p=result.p,
                      test=_bleu_test_text(result, n), effect=effect, lo=lo, hi=hi,
                      **_sentence_interval(result))


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


def _ec(cf_test):
    """Expert choice, uncapped (cap = 0), at a capacity factor that passes cf_test."""
    def pick(config):
        cf = _cf(config)
        return config.method == "expert_choice" and _num(config.knob("cap", 0)) in (0, 0.0) \
            and isinstance(cf, float) and cf_test(cf)
    return pick


def _dense(sizing):
    return lambda c: c.method == "dense" and str(c.knob("sizing", "active")) == sizing


def _not_measured(claim, missing):
    return ClaimResult(claim, NOT_MEASURED, "", "-", missing)


def _no_common_seeds(pairs):
    parts = []
    for ca, cb in pairs[:2]:
        parts.append(f"{ca.label} has seeds {','.join(map(str, ca.seeds()))}, {cb.label} has "
                     f"{','.join(map(str, cb.seeds()))}")
    return " (matched configurations exist but share no seed with values on both sides: " + \
        "; ".join(parts) + ")"


class Checker:
    def __init__(self, configs, target, bleu_test, alpha=DEFAULT_ALPHA):
        self.configs = configs
        self.target = target
        # bleu_test([((run A, k), (run B, k)), ...]) -> reports.bleu_test.BleuTest
        self.bleu_test = bleu_test
        self.alpha = alpha

    # ---- verdicts ----

    def result(self, claim, comparisons, missing):
        comparisons = [c for c in comparisons if c is not None]
        if not comparisons:
            return _not_measured(claim, missing)
        measured = "; ".join(c.text for c in comparisons)
        sig = "; ".join(f"{c.label}: {c.test}" if len(comparisons) > 1 else c.test
                        for c in comparisons)
        seeds = min(len(c.seeds) for c in comparisons)
        against = [c for c in comparisons if not c.agrees]
        if against:
            measured += (f" [{len(comparisons) - len(against)} of {len(comparisons)} "
                         f"comparisons go the claimed way]")
            return ClaimResult(claim, OPPOSITE, measured, sig, "", seeds=seeds,
                               comparisons=comparisons)
        ps = [c.p for c in comparisons]
        p = None if any(x is None for x in ps) else max(ps)
        if len(comparisons) > 1 and p is not None:
            sig += f"; claim p = {_p(p)} (the largest: every comparison must hold)"
        return ClaimResult(claim, NOT_SIGNIFICANT, measured, sig, "", p=p, seeds=seeds,
                           comparisons=comparisons)

    # ---- building blocks ----

    def pairwise(self, claim, a, b, value, higher, unit, need, same_knobs=(), ratio=False,
                 bleu=False, reach=False, also=()):
        """`also`: further (a, b, same_knobs) sides that must hold too (a conjunction)."""
        comps, sides_missing = [], []
        for sa, sb, knobs in [(a, b, same_knobs)] + list(also):
            pairs = matched_pairs(self.configs, sa, sb, knobs)
            found = []
            for ca, cb in pairs:
                if bleu:
                    c = bleu_comparison(ca, cb, value, self.bleu_test, self.alpha)
                else:
                    c = seed_comparison(ca, cb, value, higher, unit, self.alpha, ratio=ratio,
                                        reach=reach)
                if c is not None:
                    found.append(c)
            if not found:
                tail = _no_common_seeds(pairs) if pairs else near_miss(self.configs, sa, sb,
                                                                       knobs)
                sides_missing.append(tail)
            comps += found
        if sides_missing:
            return _not_measured(claim, need + "".join(sides_missing))
        return self.result(claim, comps, need)

    def trend(self, claim, select, x_of, need, group_ignore):
        """BLEU rises with x among configurations of `select` that differ only in x: one BLEU
        comparison per step from one x to the next."""
        groups = {}
        for c in self.configs:
            if not select(c) or not c.runs:
                continue
            spec = {k: v for k, v in c.spec.items() if k not in group_ignore}
            groups.setdefault(repr(sorted(spec.items(), key=str)), []).append(c)
        comps = []
        bleu = lambda r: r.bleu()  # noqa: E731
        for group in groups.values():
            pts = sorted({x_of(c): c for c in group}.items())
            for (x1, c1), (x2, c2) in zip(pts, pts[1:]):
                comps.append(bleu_comparison(c2, c1, bleu, self.bleu_test, self.alpha,
                                             label=f"{c2.label} ({x2:g}) vs {c1.label} "
                                                   f"({x1:g})"))
        return self.result(claim, comps, need)

    def k_comparisons(self, select):
        """Per configuration of `select` evaluated at two or more k: (config, [k...])."""
        out = []
        for c in self.configs:
            if not select(c):
                continue
            ks = sorted({k for r in c.runs for k in r.k_curve})
            if len(ks) >= 2:
                out.append((c, ks))
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

    def checks(self):
        """Each claim's check by the claim's id: a function of the Claim that returns its
        ClaimResult. Bound by id, so the order of a claims list never pairs a claim with
        another's check."""
        bleu = lambda r: r.bleu()  # noqa: E731
        gd = lambda x: x.method == "gating_dropout" and str(x.knob("gate_expert_drop", "false")) \
            .lower() in ("false", "0")  # noqa: E731
        ged = lambda x: x.method == "gating_dropout" and not gd(x)  # noqa: E731
        low_ec = _ec(lambda v: v <= 1.0)
        return {
            "switch.time": lambda claim: self.pairwise(
                claim, _is("switch"), _is("gshard"), self.reach_time, False,
                "s to target (modeled cluster)",
                self.target_need("switch and gshard runs with the same settings and "
                                 "capacity_factor"),
                same_knobs=("capacity_factor",), ratio=True, reach=True),
            "switch.top2_cf2": lambda claim: self.pairwise(
                claim, _is("gshard", capacity_factor=lambda v: v == 2.0),
                _is("switch", capacity_factor=lambda v: v == 2.0), bleu, True, "BLEU",
                "gshard and switch runs at capacity_factor=2.0 with the same settings", bleu=True),
            "switch.low_cf": lambda claim: self.pairwise(
                claim, _is("switch", capacity_factor=lambda v: isinstance(v, float)
                           and v <= 1.0),
                _is("gshard"), bleu, True, "BLEU",
                "switch and gshard runs at capacity_factor <= 1.0 with the same settings",
                same_knobs=("capacity_factor",), bleu=True),
            "switch.experts": lambda claim: self.trend(
                claim, lambda x: x.method == "switch", lambda x: x.num_experts(),
                "switch runs that differ only in the number of experts (num_experts)",
                group_ignore=("num_experts",)),
            "switch.dense": lambda claim: self.pairwise(
                claim, _is("switch"), _dense("active"), bleu, True, "BLEU",
                "switch runs and dense runs with sizing=active (the same FLOPs per token) with "
                "the same settings", bleu=True),
            "gshard.experts": lambda claim: self.trend(
                claim, lambda x: x.method == "gshard", lambda x: x.num_experts(),
                "gshard runs that differ only in the number of experts (num_experts)",
                group_ignore=("num_experts",)),
            "gshard.depth": lambda claim: self.trend(
                claim, lambda x: x.method == "gshard",
                lambda x: float(x.runs[0].run.params_total),
                "gshard runs that differ only in model size (size)", group_ignore=("size",)),
            "ec.steps": lambda claim: self.pairwise(
                claim, _ec(lambda v: v == 2.0), _is("gshard"), self.reach_steps, False,
                "steps to target", self.target_need(
                    "expert_choice (capacity_factor 2.0, no cap) and gshard runs with the same "
                    "settings"), ratio=True, reach=True),
            "ec.step_time": lambda claim: self.step_time_claim(claim),
            "ec.quality": lambda claim: self.pairwise(
                claim, _ec(lambda v: v == 2.0), _is("switch"), bleu, True, "BLEU",
                "expert_choice (capacity_factor 2.0, no cap), switch and gshard runs with the "
                "same settings", bleu=True, also=[(_ec(lambda v: v == 2.0), _is("gshard"), ())]),
            "ec.low_cf": lambda claim: self.pairwise(
                claim, low_ec, _is("switch"), bleu, True, "BLEU",
                "expert_choice runs at capacity factor <= 1 and switch runs with the same "
                "settings", bleu=True),
            "ec.dense": lambda claim: self.pairwise(
                claim, _ec(lambda v: v == 2.0), _dense("active"), bleu, True, "BLEU",
                "expert_choice runs (capacity_factor 2.0, no cap) and dense runs with "
                "sizing=active with the same settings", bleu=True),
            "thor.switch": lambda claim: self.pairwise(
                claim, _is("thor"), _is("switch"), bleu, True, "BLEU",
                "thor and switch runs with the same settings", bleu=True),
            "thor.dense": lambda claim: self.pairwise(
                claim, _is("thor"), _dense("active"), bleu, True, "BLEU",
                "thor runs and dense runs with sizing=active (the Transformer baseline of the "
                "same FLOPs per token) with the same settings", bleu=True),
            "smoe.monotone_k": lambda claim: self.smoe_monotone(claim),
            "smoe.learned_saturate": lambda claim: self.learned_saturate(claim),
            "smoe.dense": lambda claim: self.pairwise(
                claim, _is("smoe_dropout"), _dense("total"), bleu, True, "BLEU",
                "smoe_dropout runs and dense runs with sizing=total (equal parameter count) with "
                "the same settings", bleu=True),
            "gd.time": lambda claim: self.pairwise(
                claim, gd, self.base_of, self.reach_time, False,
                "s to target (modeled cluster)",
                self.target_need("gating_dropout runs and runs of its base router with the "
                                 "same settings"), same_knobs="shared", ratio=True, reach=True),
            "gd.bytes": lambda claim: self.gd_bytes(claim, gd),
            "gd.bleu": lambda claim: self.pairwise(
                claim, gd, self.base_of, bleu, True, "BLEU",
                "gating_dropout runs and runs of its base router with the same settings",
                same_knobs="shared", bleu=True),
            "gd.ged_fastest": lambda claim: self.ged_fastest(claim, ged, gd),
            **self.modern_checks(),
        }

    def run(self, claim_list=None):
        """The results of `claim_list` (default CLAIMS), in its order, each from the check
        bound to its id; Holm over the ones tested."""
        claim_list = CLAIMS if claim_list is None else claim_list
        checks = self.checks()
        unknown = [claim.id for claim in claim_list if claim.id not in checks]
        if unknown:
            raise ValueError("no check for claim(s) " + ", ".join(unknown))
        return adjust([checks[claim.id](claim) for claim in claim_list], self.alpha)

    def modern_checks(self):
        """The modern routers' checks by claim id (METHODS-MODERN.md section 10;
        experiments/modern.toml)."""
        bleu = lambda r: r.bleu()  # noqa: E731
        # Every knob aux_free and topk share but the balancing itself (topk's aux_coef): the
        # pair differs only in how it balances (node-limited arms pair with node-limited ones).
        matched_k = SharedKnobsBut(("aux_coef",))
        return {
            "auxfree.balance": lambda claim: self.pairwise(
                claim, _is("aux_free"), _is("topk"), max_vio, False, "MaxVio",
                "aux_free and topk runs (topk with its aux loss) with the same settings and "
                "the same knobs but aux_coef (k, score_func, dropless, node limit, ...), with "
                "expert loads", same_knobs=matched_k),
            "auxfree.bleu": lambda claim: self.pairwise(
                claim, _is("aux_free"), _is("topk"), bleu, True, "BLEU",
                "aux_free and topk runs with the same settings and the same knobs but aux_coef",
                same_knobs=matched_k, bleu=True),
            "deepseekmoe.fine_grained": lambda claim: self.layout_claim(claim),
            "base.balance": lambda claim: self.pairwise(
                claim, _is("base"), _is("switch"), max_vio, False, "MaxVio",
                "base and switch runs with the same settings, with expert loads"),
            "sinkhorn.hash": lambda claim: self.pairwise(
                claim, _is("sinkhorn"), _is("hash"), bleu, True, "BLEU",
                "sinkhorn and hash runs with the same settings", bleu=True),
            "nodelimit.reach": lambda claim: self.node_limit(claim),
            "hash.switch": lambda claim: self.pairwise(
                claim, _is("hash"), _is("switch"), bleu, True, "BLEU",
                "hash and switch runs with the same settings", bleu=True),
        }

    def node_limit(self, claim):
        """Node-limited top-k (node_limit_topk = M > 0) against the same method, knobs and
        settings unrestricted: fewer other-node copies per token (sign-flip over seeds), and no
        token of the limited runs reaching more than M nodes (a bound: a run above it makes
        the comparison go the other way, whatever the copies say)."""
        need = ("topk or aux_free runs with node_limit_topk = M > 0 and runs of the same "
                "method, knobs and settings with node_limit_topk = 0, on workers spanning "
                "nodes (workers > workers_per_node), with the node reach metrics "
                "(moe.<layer>.other_node_copies_per_token, logged since issue 19)")
        comps = []
        for ca in self.configs:
            m = node_limit_m(ca)
            if not m or not ca.runs:
                continue
            for cb in self.configs:
                if cb.method != ca.method or node_limit_m(cb) != 0 or not cb.runs or \
                        _base(ca) != _base(cb) or _knobs_but(ca, NODE_LIMIT_KNOBS) != \
                        _knobs_but(cb, NODE_LIMIT_KNOBS):
                    continue
                c = seed_comparison(ca, cb, other_node_copies, False,
                                    "other-node copies per token", self.alpha)
                if c is None:
                    continue
                reached = [nodes_reached_max(r) for r in ca.runs]
                reached = [x for x in reached if x is not None]
                most = max(reached) if reached else None
                c.text += (f"; most nodes a token of {ca.label} reaches: "
                           f"{'?' if most is None else f'{most:g}'} (M = {m})")
                if not groups_within_nodes(ca):
                    c.text += (" [the bound is not checked: the expert groups do not lie within "
                               "nodes (node_limit_groups not a multiple of the nodes, or a "
                               "partial last node)]")
                elif most is None or most > m:
                    c.agrees = False
                    c.text += " [above the bound]" if most is not None else \
                        " [not logged: the bound is unchecked]"
                comps.append(c)
        return self.result(claim, comps, need)

    def layout_claim(self, claim):
        """Shared and fine-grained experts against the same method, knobs and settings without
        them: the same active FFN width per token (Note [Shared and fine-grained experts])."""
        comps = []
        for ca in self.configs:
            if _layout(ca) == (0, 1) or not ca.runs:
                continue
            for cb in self.configs:
                if cb.method == ca.method and _layout(cb) == (0, 1) and cb.runs and \
                        _base(ca, LAYOUT_KEYS) == _base(cb, LAYOUT_KEYS) and \
                        ca.spec.get("knobs") == cb.spec.get("knobs"):
                    comps.append(bleu_comparison(ca, cb, lambda r: r.bleu(), self.bleu_test,
                                                 self.alpha))
        return self.result(claim, comps,
                           "runs with shared_experts or expert_granularity and runs of the same "
                           "method, knobs and settings without them")

    def step_time_claim(self, claim):
        """Expert choice's step against top-2's: modeled on the cluster device profile when
        both runs model compute (compute_modeled_ms), else measured on this machine."""
        ec, gs = _ec(lambda v: v == 2.0), _is("gshard")
        comps = []
        pairs = matched_pairs(self.configs, ec, gs)
        for ca, cb in pairs:
            modeled = all(r.compute_modeled for r in ca.runs + cb.runs)
            if modeled:
                value, unit = (lambda r: r.step_modeled_ms), \
                    f"ms per step (modeled on {_profiles(ca, cb)})"
            else:
                value, unit = (lambda r: r.step_ms), "ms per step (measured on this machine)"
            comps.append(seed_comparison(ca, cb, value, False, unit, self.alpha, ratio=True))
        need = "expert_choice (capacity_factor 2.0, no cap) and gshard runs with the same settings"
        if not [x for x in comps if x is not None]:
            return _not_measured(claim, need + (_no_common_seeds(pairs) if pairs else
                                                near_miss(self.configs, ec, gs, ())))
        return self.result(claim, comps, need)

    def ged_fastest(self, claim, ged, gd):
        need = "gating_dropout runs with gate_expert_drop=true and =false, same settings"
        pairs = matched_pairs(self.configs, ged, gd, ("p",))
        comps = []
        for ca, cb in pairs:
            if all(r.compute_modeled for r in ca.runs + cb.runs):
                value, unit = (lambda r: r.step_modeled_ms), \
                    f"ms per step (modeled on {_profiles(ca, cb)})"
            else:
                value, unit = (lambda r: r.step_ms), "ms per step (measured on this machine)"
            comps.append(seed_comparison(ca, cb, value, False, unit, self.alpha, ratio=True))
        if not [x for x in comps if x is not None]:
            return _not_measured(claim, need + (_no_common_seeds(pairs) if pairs else
                                                near_miss(self.configs, ged, gd, ("p",))))
        return self.result(claim, comps, need)

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
        """Equivalence: the per-seed ratio of other-node bytes is within the tolerance of
        1 - p: two one-sided sign-flip tests (TOST), p = the larger."""
        need = ("gating_dropout and base-router runs with the same settings and workers "
                "spanning nodes (workers > workers_per_node), so that there are cross-node "
                "bytes")
        pairs = matched_pairs(self.configs, gd, self.base_of, "shared")
        comps = []
        for ca, cb in pairs:
            p_drop = gd_drop_probability(ca)
            if not isinstance(p_drop, float):
                continue
            sa, sb = ca.by_seed(), cb.by_seed()
            ratios, seeds = [], []
            for s in sorted(set(sa) & set(sb)):
                a = sa[s].bytes_per_step.get("other_node")
                b = sb[s].bytes_per_step.get("other_node")
                if a is not None and b:
                    ratios.append(a / b)
                    seeds.append(s)
            if not ratios:
                continue
            expect, tol = 1 - p_drop, BYTE_RATIO_TOLERANCE
            p = max(stats.sign_flip_p([r - (expect - tol) for r in ratios]),
                    stats.sign_flip_p([(expect + tol) - r for r in ratios]))
            m, lo, hi = stats.t_interval(ratios)
            n = len(ratios)
            label = f"{ca.label} vs {cb.label}"
            comps.append(Comparison(
                label=label, seeds=seeds, agrees=abs(m - expect) <= tol, p=p, effect=m, lo=lo,
                hi=hi,
                text=(f"{label}: other-node bytes ratio {m:.3f} "
                      f"({_interval_text(lo, hi, lambda v: f'{v:.3f}', n)}; 1-p = "
                      f"{expect:.2f}, tolerance {tol})"),
                test="equivalence (two one-sided tests), " + sign_flip_text(p, n, self.alpha)))
        if not comps:
            return _not_measured(claim, need + (_no_common_seeds(pairs) if pairs else
                                                near_miss(self.configs, gd, self.base_of,
                                                          "shared")))
        return self.result(claim, comps, need)

    def smoe_monotone(self, claim):
        comps = []
        for c, ks in self.k_comparisons(lambda x: x.method == "smoe_dropout"):
            for k1, k2 in zip(ks, ks[1:]):
                comps.append(self._k_step(c, k1, k2))
        return self.result(claim, comps,
                           "smoe_dropout runs evaluated at two or more k (eval_k)")

    def _k_step(self, c, k1, k2):
        """BLEU at k2 against BLEU at k1 in the same runs (paired by run)."""
        seeds, diffs, xs, ys, pairs = [], [], [], [], []
        for r in c.runs:
            x, y = r.k_curve.get(k2), r.k_curve.get(k1)
            if x is None or y is None:
                continue
            seeds.append(r.run.seed)
            xs.append(x)
            ys.append(y)
            diffs.append(x - y)
            pairs.append(((r.run, k2), (r.run, k1)))
        if not seeds:
            return None
        effect, lo, hi = stats.t_interval(diffs)
        n = len(seeds)
        label = f"{c.label} k={k2} vs k={k1}"
        result = self.bleu_test(pairs)
        return Comparison(label=label, seeds=seeds, agrees=effect > 0, p=result.p,
                          test=_bleu_test_text(result, n), effect=effect, lo=lo, hi=hi,
                          text=_bleu_effect_text(label, effect, lo, hi, n, result, xs, ys),
                          **_sentence_interval(result))

    def learned_saturate(self, claim):
        """Gain from the smallest to the largest k evaluated is below SATURATION_BLEU: the
        sign-flip test on SATURATION_BLEU - gain per seed."""
        comps = []
        for c, ks in self.k_comparisons(lambda x: x.method in ("switch", "gshard", "thor")):
            gains, seeds = [], []
            for r in c.runs:
                lo_k, hi_k = r.k_curve.get(ks[0]), r.k_curve.get(ks[-1])
                if lo_k is not None and hi_k is not None:
                    gains.append(hi_k - lo_k)
                    seeds.append(r.run.seed)
            if not gains:
                continue
            p = stats.sign_flip_p([SATURATION_BLEU - g for g in gains])
            m, lo, hi = stats.t_interval(gains)
            n = len(gains)
            label = f"{c.label}"
            comps.append(Comparison(
                label=label, seeds=seeds, agrees=m < SATURATION_BLEU, p=p, effect=m, lo=lo,
                hi=hi,
                text=(f"{label}: BLEU k={ks[0]} -> k={ks[-1]}: {m:+.2f} "
                      f"({_interval_text(lo, hi, lambda v: f'{v:+.2f}', n)}; saturates: gain "
                      f"< {SATURATION_BLEU} BLEU)"),
                test=sign_flip_text(p, n, self.alpha)))
        return self.result(claim, comps,
                           "switch, gshard or thor runs evaluated at two or more k (eval_k)")


# Run-spec fields of the shared and fine-grained experts (absent from a spec at their defaults).
LAYOUT_KEYS = ("shared_experts", "expert_granularity")


NODE_LIMIT_KNOBS = ("node_limit_topk", "node_limit_groups", "node_score")


def node_limit_m(config):
    """M of a configuration's node-limited routing: 0 when unrestricted, None when its method
    has no such knob."""
    value = config.knob("node_limit_topk")
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def groups_within_nodes(config):
    """Whether M groups of node-limited routing mean at most M nodes: every node full
    (workers a multiple of workers_per_node) and every expert group inside one node (G = 0,
    the nodes, or a multiple of the number of nodes)."""
    workers = int(config.spec.get("workers", 1))
    per_node = int(config.spec.get("workers_per_node", 1))
    if per_node <= 0 or workers % per_node != 0:
        return False
    nodes = workers // per_node
    try:
        groups = int(float(config.knob("node_limit_groups", 0) or 0))
    except ValueError:
        return False
    return groups == 0 or groups % nodes == 0


def _knobs_but(config, names):
    return {k: _num(v) for k, v in config.spec.get("knobs", {}).items() if k not in names}


def _layer_metric(summary, suffix):
    """Every logged value of moe.<layer>.<suffix>, over layers and steps."""
    return [v for key, history in summary.run.metrics.items()
            if key.startswith("moe.") and key.endswith("." + suffix)
            for _, _, v in history]


def other_node_copies(summary):
    """Distinct other nodes a token's kept rows reach, per real token (Note [Node copies]):
    the mean over MoE layers and logged steps; None when not logged (one node, older runs)."""
    values = _layer_metric(summary, "other_node_copies_per_token")
    return sum(values) / len(values) if values else None


def nodes_reached_max(summary):
    """The most nodes any token reached, over MoE layers and logged steps; None when not
    logged."""
    values = _layer_metric(summary, "nodes_per_token_max")
    return max(values) if values else None


def _layout(config):
    return (int(config.spec.get("shared_experts", 0)),
            int(config.spec.get("expert_granularity", 1)))


def max_vio(summary):
    """MaxVio_batch (LFB Eq. 4): (max load - mean load) / mean load of an MoE layer's expert
    loads at a logged step, averaged over layers and logged steps; None without loads."""
    vios = []
    for steps in summary.run.expert_load.values():
        for loads in steps.values():
            if loads and sum(loads) > 0:
                mean = sum(loads) / len(loads)
                vios.append((max(loads) - mean) / mean)
    return sum(vios) / len(vios) if vios else None


def _profiles(ca, cb):
    names = sorted({r.device_profile or "?" for r in ca.runs + cb.runs})
    return ", ".join(names)


def adjust(results, alpha):
    """Holm-Bonferroni over the claims that have a p-value; sets p_holm and the verdicts."""
    tested = [r for r in results if r.p is not None]
    adjusted = stats.holm([r.p for r in tested])
    m = len(tested)
    for r, q in zip(tested, adjusted):
        r.p_holm = q
        r.significance += (f"; Holm-adjusted p = {_p(q)} over the {m} claims tested, alpha "
                           f"{alpha:g}")
        if r.verdict == NOT_SIGNIFICANT and q <= alpha:
            r.verdict = SUPPORTED
    return results


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
            keys = (set(ca.spec) | set(cb.spec)) - set(NOT_COMPARED_KEYS)
            for k in sorted(keys):
                if ca.spec.get(k) != cb.spec.get(k):
                    diffs.append(f"{k} {ca.spec.get(k)} vs {cb.spec.get(k)}")
            for k in sorted(_same_knob_names(ca, cb, same_knobs)):
                if _num(ca.knob(k)) != _num(cb.knob(k)):
                    diffs.append(f"{k} {ca.knob(k)} vs {cb.knob(k)}")
            if diffs and (best is None or len(diffs) < len(best[2])):
                best = (ca, cb, diffs)
    if best is None:
        return ""
    ca, cb, diffs = best
    return f" (closest: {ca.label} vs {cb.label} differ in {', '.join(diffs)})"


CLAIMS = [
    Claim("switch.time", "Switch Transformer (Table 1)",
          "Switch beats top-2 (GShard) on quality per unit time: it reaches the target "
          "quality sooner in wall-clock at the same capacity factor",
          "modeled cluster seconds to the target BLEU"),
    Claim("switch.top2_cf2", "Switch Transformer (Table 1)",
          "At capacity factor 2.0, top-2 is slightly better per step than Switch",
          "test BLEU after the same number of steps"),
    Claim("switch.low_cf", "Switch Transformer (Table 1)",
          "At low capacity factors (1.0) Switch is better than top-2",
          "test BLEU after the same number of steps"),
    Claim("switch.experts", "Switch Transformer (Fig. 4)",
          "Quality per step improves as the number of experts grows",
          "test BLEU against the number of experts"),
    Claim("switch.dense", "Switch Transformer (Fig. 4)",
          "Switch beats the dense Transformer with the same FLOPs per token at the same step",
          "test BLEU against dense sizing=active"),
    Claim("gshard.experts", "GShard (Table 3)",
          "More experts give more BLEU (with diminishing returns)",
          "test BLEU against the number of experts"),
    Claim("gshard.depth", "GShard (Table 3)",
          "Deeper (here: larger, size base -> large) models give more BLEU",
          "test BLEU against total parameters"),
    Claim("ec.steps", "Expert Choice (Fig. 2a)",
          "Expert Choice (cf 2) converges in fewer steps than top-2 (paper: less than half)",
          "training steps to the target BLEU"),
    Claim("ec.step_time", "Expert Choice (Fig. 2a)",
          "A top-2 step is about 20% slower than an Expert Choice step",
          "ms per training step (modeled on the cluster profile, else measured here)"),
    Claim("ec.quality", "Expert Choice (Table 2)",
          "Expert Choice beats top-1 (Switch) and top-2 (GShard) in quality", "test BLEU"),
    Claim("ec.low_cf", "Expert Choice (Fig. 4a)",
          "Expert Choice at capacity factor 1 (even 0.5) still beats top-1", "test BLEU"),
    Claim("ec.dense", "Expert Choice (Table 3)",
          "Expert Choice beats the dense model with the same FLOPs per token",
          "test BLEU against dense sizing=active"),
    Claim("thor.switch", "THOR (abstract)",
          "THOR beats Switch in BLEU (paper: by about 2 BLEU)", "test BLEU"),
    Claim("thor.dense", "THOR (abstract)",
          "THOR beats the dense Transformer baseline", "test BLEU against dense sizing=active"),
    Claim("smoe.monotone_k", "SMoE-Dropout",
          "SMoE-Dropout's BLEU rises monotonically with the number of experts k at inference",
          "test BLEU at each k"),
    Claim("smoe.learned_saturate", "SMoE-Dropout (Table 1 narrative)",
          "Learned routers and THOR saturate or degrade as k grows beyond the training k",
          "test BLEU at each k"),
    Claim("smoe.dense", "SMoE-Dropout",
          "SMoE-Dropout beats dense training at equal parameter count",
          "test BLEU against dense sizing=total"),
    Claim("gd.time", "Gating Dropout (abstract)",
          "Gating Dropout reaches the target BLEU sooner in wall-clock than its base router",
          "modeled cluster seconds to the target BLEU"),
    Claim("gd.bytes", "Gating Dropout (section 6 accounting)",
          "Gating Dropout sends (1-p)x its base router's cross-node bytes",
          "other-node bytes per step"),
    Claim("gd.bleu", "Gating Dropout (abstract)",
          "Gating Dropout gets better BLEU than its base router", "test BLEU"),
    Claim("gd.ged_fastest", "Gating Dropout",
          "Gate-Expert-Drop is the fastest variant (it also skips the expert)",
          "ms per training step (modeled on the cluster profile, else measured here)"),
]


# The modern routers (METHODS-MODERN.md section 10; experiments/modern.toml).
CLAIMS += [
    Claim("auxfree.balance", "Aux-loss-free balancing (Wang et al. 2024, Table 2)",
          "Aux-loss-free balancing (a selection bias, no aux loss) balances the experts better "
          "than top-k with the aux loss (paper: MaxVio 0.04 vs 0.72)",
          "MaxVio of the training expert loads (mean over layers and logged steps)"),
    Claim("auxfree.bleu", "Aux-loss-free balancing (Wang et al. 2024, Table 2)",
          "Aux-loss-free balancing loses no quality: BLEU equal to or better than top-k with "
          "the aux loss "
          "(paper: perplexity 9.50 vs 9.56)", "test BLEU"),
    Claim("deepseekmoe.fine_grained", "DeepSeekMoE (Tables 1-2, Fig. 3)",
          "Shared and fine-grained experts beat the plain layer at the same active FLOPs per "
          "token (paper: Pile loss 1.808 vs GShard's 1.867)",
          "test BLEU against the same method without them"),
    Claim("base.balance", "BASE layers (Lewis et al. 2021)",
          "A linear assignment balances training loads exactly, where Switch's aux loss does "
          "not", "MaxVio of the training expert loads"),
    Claim("sinkhorn.hash", "S-BASE (Clark et al. 2022, review)",
          "Sinkhorn-balanced routing beats hash routing", "test BLEU"),
    Claim("nodelimit.reach", "DeepSeek-V3 (section 2.1.2, node-limited routing)",
          "Node-limited routing sends each token to at most M nodes, so fewer other-node copies "
          "per token than unrestricted top-k at the same k",
          "other-node copies per token (distinct nodes, Note [Node copies]) and the most nodes "
          "a token reaches"),
    Claim("hash.switch", "Hash Layers (Roller et al. 2021, abstract)",
          "Hash routing matches or beats Switch with no routing parameters (contested: "
          "DeepSeekMoE Table 1 finds it worse)", "test BLEU"),
]


def check(configs, target, bleu_test, alpha=DEFAULT_ALPHA, claim_list=None):
    """Verdicts of `claim_list` (default CLAIMS, in any order or a subset), each from its own
    check by claim id."""
    return Checker(configs, target, bleu_test, alpha).run(claim_list)
