"""The tables of the report, as plain data (title, columns, rows, note) for render.py."""

import itertools
import json
import platform
import tomllib
from dataclasses import dataclass, field

import matplotlib

from reports import stats


@dataclass
class Table:
    id: str
    title: str
    columns: list
    rows: list = field(default_factory=list)
    note: str = ""


def _f(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _mb(value):
    return "-" if value is None else f"{value / 1e6:,.3f}"


def _langs(configs):
    return sorted({lang for c in configs for r in c.runs for lang in r.test_bleu
                   if lang != "all"})


def _reach_cols(r, target):
    hit = r.reach(target)
    if target is None:
        return ["-", "-", "-"]
    if hit is None:
        return ["not reached"] * 3
    return [str(hit[0]), _f(hit[1], 1), _f(hit[2], 1)]


def runs_table(summaries, configs, target):
    label = {}
    for c in configs:
        for r in c.runs:
            label[r.run.id] = c.label
    langs = _langs(configs)
    cols = (["run", "method", "configuration", "seed", "status", "steps", "train s",
             "valid BLEU", "test BLEU (headline)"] + [f"test {lang}" for lang in langs] +
            ["steps to target", "s to target (measured here)", "s to target (modeled cluster)",
             "MB/step same worker", "MB/step same node", "MB/step other node", "tokens/s",
             "MFU % (measured here)", "peak MB", "step ms (measured here)", "step ms (modeled cluster)", "modeled time",
             "params total", "params active"])
    rows = []
    for s in summaries:
        run = s.run
        rows.append([run.id, run.method, label.get(run.id, "(not finished)"), str(run.seed),
                     run.status, str(s.steps), _f(s.train_seconds, 1), _f(s.final_valid_bleu),
                     _f(s.headline_test)] +
                    [_f(s.test_bleu.get(lang)) for lang in langs] + _reach_cols(s, target) +
                    [_mb(s.bytes_per_step.get(k)) for k in ("same_worker", "same_node",
                                                             "other_node")] +
                    [_f(s.tokens_per_s, 0),
                     _f(None if s.mfu is None else 100.0 * s.mfu, 2), _f(s.peak_mem_mb, 0),
                     _f(s.step_ms, 1), _f(s.step_modeled_ms, 1),
                     s.time_basis(), f"{run.params_total:,}", f"{run.params_active:,}"])
    return Table("runs", "Runs", cols, rows,
                 "Every run of the selection, whatever its status. BLEU: the last validation; "
                 "test BLEU at the end of training (k = the method's default); the headline is "
                 "the mean of the per-language BLEU shown next to it. 'measured here': on the "
                 "machine that ran it (MFU: model FLOPs on active parameters per second over the "
                 "device's peak, on a CPU this machine's measured GEMM rate); 'modeled cluster': see the column 'modeled time' and the "
                 "network model table.")


def _mean_of(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def configs_table(configs, target):
    langs = _langs(configs)
    cols = (["configuration", "method", "seeds", "missing seeds", "valid BLEU",
             "test BLEU (headline)"] +
            [f"test {lang}" for lang in langs] +
            ["seeds at target", "steps to target", "s to target (measured here)",
             "s to target (modeled cluster)", "MB/step same worker", "MB/step same node",
             "MB/step other node", "tokens/s", "params total", "params active"])
    rows = []
    for c in configs:
        def st(fn):
            return c.stat(fn)

        def rng(fn, digits=2):
            s = st(fn)
            if s.mean is None:
                return "-"
            if s.n > 1 and s.ci95 is not None:
                return f"{s.mean:.{digits}f} ± {s.ci95:.{digits}f}"
            return f"{s.mean:.{digits}f}"
        hits = [r.reach(target) for r in c.runs]
        reached = [h for h in hits if h is not None]
        run0 = c.runs[0].run
        rows.append([c.label, c.method, ",".join(str(s) for s in c.seeds()),
                     ",".join(c.missing) or "-", rng(lambda r: r.final_valid_bleu),
                     rng(lambda r: r.headline_test)] +
                    [rng(lambda r, lang=lang: r.test_bleu.get(lang)) for lang in langs] +
                    [f"{len(reached)}/{len(hits)}" if target is not None else "-",
                     _f(_mean_of([float(h[0]) for h in reached]), 0),
                     _f(_mean_of([h[1] for h in reached]), 1),
                     _f(_mean_of([h[2] for h in reached]), 1)] +
                    [_mb(st(lambda r, k=k: r.bytes_per_step.get(k)).mean)
                     for k in ("same_worker", "same_node", "other_node")] +
                    [_f(st(lambda r: r.tokens_per_s).mean, 0), f"{run0.params_total:,}",
                     f"{run0.params_active:,}"])
    return Table("configurations", "Per configuration (mean over seeds)", cols, rows,
                 "Finished runs only. Values are means over seeds ± the half-width of the "
                 "95% Student-t interval of the mean (t_{0.975, n-1} s / sqrt(n)) where there "
                 "are 2 or more seeds; 'seeds' lists them, 'missing seeds' the seeds of the "
                 "selection that the configuration has no finished run for, with the status "
                 "of its run when it has one ('3 (failed)'), as moebench runs --group-by shows. "
                 "Times to target are over the seeds "
                 "that reached it. Headline "
                 "BLEU: the mean of the per-language BLEU (test <lang> columns).")


def _pv(value):
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 0.001 else f"{value:.3f}"


def claims_note(results, alpha):
    tested = sum(1 for r in results if r.p is not None)
    seeds = sorted({r.seeds for r in results if r.verdict != "not measured"})
    seeds_text = ", ".join(str(n) for n in seeds) if seeds else "none"
    return (f"One row per headline claim of the seed papers (docs/METHODS.md section 8). "
            f"alpha = {alpha:g}; {tested} of {len(results)} claims have a test, and they are "
            f"tested at once: 'supported' needs the Holm-Bonferroni adjusted p <= alpha (over "
            f"those {tested}) and every comparison going the claimed way. Paired seeds per "
            f"measured claim: {seeds_text}. BLEU claims: one-sided paired bootstrap of the "
            f"headline (the mean over languages, each with its tokenizer) over the pooled "
            f"test sentences of the common seeds (C++ BLEU), with a sentence-level 95% "
            f"interval of the difference besides the per-seed one; other claims: exact "
            f"one-sided sign-flip test over the per-seed differences (at least "
            f"{stats.min_seeds_for(alpha)} seeds are needed to reach p <= {alpha:g}"
            + (f", and {stats.min_seeds_for(alpha / tested)} for the first Holm step, p <= "
               f"alpha / {tested}" if tested > 1 else "") + "). Effects "
            "with Student-t 95% intervals over seeds. Comparisons pair configurations that "
            "differ only in the method (and the knobs the claim names), seed by seed.")


def claims_table(results, alpha=0.05):
    rows = [[r.claim.paper, r.claim.statement, r.claim.measure, r.verdict,
             r.measured or "-", r.significance, _pv(r.p), _pv(r.p_holm),
             str(r.seeds) if r.verdict != "not measured" else "-", r.missing or "-"]
            for r in results]
    return Table("claims", "Claims check",
                 ["paper", "claim", "compared on", "verdict", "measured (effect, 95% interval)",
                  "test", "p", "p (Holm)", "seeds", "missing"], rows,
                 claims_note(results, alpha))


def _expected_runs(manifest_text):
    """The (method, size, seed) runs a simple manifest asks for: one file, a [matrix] of
    method / size / seed lists only, no [[runs]]. None when the manifest is anything richer:
    then only the sweep runner can expand it (`moebench sweep --dry-run`), and the runs it
    planned are in the database as pending rows."""
    if manifest_text.count("# ==> ") > 1:
        return None
    try:
        m = tomllib.loads(manifest_text)
    except (tomllib.TOMLDecodeError, TypeError):
        return None
    matrix = m.get("matrix", {})
    if m.get("runs") or "include" in m or not matrix or "method" not in matrix:
        return None
    if not set(matrix) <= {"method", "size", "seed"}:
        return None
    if not all(isinstance(v, list) for v in matrix.values()):
        return None
    sizes = matrix.get("size", ["tiny"])
    seeds = matrix.get("seed", [1])
    return [(mm, ss, int(sd)) for mm, ss, sd in itertools.product(matrix["method"], sizes,
                                                                   seeds)]


def missing_table(db, summaries):
    rows = []
    for s in summaries:
        run = s.run
        if run.status != "finished":
            what = {"failed": "failed", "killed": "killed",
                    "running": "still running (or interrupted without a status update)",
                    "pending": "not started"}.get(run.status, run.status)
            rows.append([run.id, run.method, str(run.seed), run.status,
                         f"{what}: {run.error}" if run.error else what,
                         f"step {s.steps}" if s.steps else "no training step recorded"])
        else:
            if not s.valid_curve:
                rows.append([run.id, run.method, str(run.seed), run.status,
                             "no validation BLEU", "run with --valid-sentences > 0"])
            elif s.headline_test is None:
                rows.append([run.id, run.method, str(run.seed), run.status, "no test BLEU",
                             ""])
    for sweep in db.sweeps:
        combos = _expected_runs(sweep.manifest)
        if combos is None:
            continue
        have = {(r.run.method, r.run.size, r.run.seed) for r in summaries
                if r.run.sweep_id == sweep.id}
        for method, size, seed in combos:
            if (method, size, seed) not in have:
                rows.append(["-", method, str(seed), "missing",
                             f"in the manifest of sweep {sweep.name} but not in the database "
                             f"(size {size})", "run the sweep again"])
    return Table("missing", "Missing and incomplete runs", ["run", "method", "seed", "status",
                                                             "what is missing", "detail"], rows,
                 "Runs that did not finish (with their error), finished runs without BLEU, and "
                 "runs a sweep's manifest asks for that are not in the database." if rows else
                 "Nothing is missing: every run finished with validation and test BLEU." if
                 summaries else "The selection has no runs at all.")


def signatures_table(summaries):
    counts = {}
    for s in summaries:
        for sig in s.signatures:
            counts[sig] = counts.get(sig, 0) + 1
    rows = []
    for (signature, decoding), n in sorted(counts.items()):
        try:
            dec = ", ".join(f"{k}={v}" for k, v in sorted(json.loads(decoding).items()))
        except (json.JSONDecodeError, AttributeError):
            dec = decoding
        rows.append([signature, dec, str(n)])
    return Table("signatures", "BLEU signatures and decoding settings",
                 ["sacreBLEU signature", "decoding", "runs"], rows,
                 "Scores with different signatures are not comparable.")


def _short(value, width=40):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[:width - 3] + "..."


def _format_libs(libs):
    """runs.libs: library versions, plus nested records (corpus, environment) shown as their
    scalar fields."""
    if not isinstance(libs, dict):
        return _short(libs, 200)
    parts = []
    for key, value in sorted(libs.items()):
        if isinstance(value, dict):
            inner = ", ".join(f"{k}={_short(v)}" for k, v in sorted(value.items())
                              if not isinstance(v, (dict, list)))
            parts.append(f"{key} ({inner})")
        else:
            parts.append(f"{key} {_short(value)}")
    return "; ".join(parts)


def environment_table(db, summaries):
    rows = []
    seen = set()
    for s in summaries:
        r = s.run
        libs = _format_libs(r.libs)
        key = (r.host, r.device, r.threads, libs)
        if key in seen:
            continue
        seen.add(key)
        n = sum(1 for x in summaries
                if (x.run.host, x.run.device, x.run.threads) == key[:3])
        rows.append(["runs", f"host {r.host or '?'}, device {r.device or '?'}, "
                     f"{r.threads} threads; {libs or 'no library versions recorded'}",
                     f"{n} runs"])
    for sweep in db.sweeps:
        rows.append(["sweep", f"{sweep.name} ({sweep.id}), created {sweep.created_at}",
                     f"git {sweep.git_commit}{' (dirty)' if sweep.dirty else ''}"])
    if not db.sweeps:
        rows.append(["git commit", "not recorded: these runs were not started by a sweep "
                     "(`moebench sweep` records the commit)", ""])
    rows.append(["report", f"Python {platform.python_version()}, matplotlib "
                 f"{matplotlib.__version__}", f"database schema version {db.schema_version}"])
    return Table("environment", "Environment", ["what", "value", "detail"], rows)


def _link_text(net):
    return (f"{net.intra_node_bytes_per_s * 8 / 1e9:g} / {net.inter_node_bytes_per_s * 8 / 1e9:g}"
            f" Gb/s, {net.intra_node_latency_s * 1e6:g} / {net.inter_node_latency_s * 1e6:g} us")


def network_table(network, target, summaries=()):
    rows = [
        ["inter-node bandwidth", f"{network.inter_node_bytes_per_s * 8 / 1e9:g} Gb/s",
         "InfiniBand-class (the Gating Dropout paper's V100 cluster)"],
        ["intra-node bandwidth", f"{network.intra_node_bytes_per_s / 1e9:g} GB/s",
         "NVLink-class"],
        ["inter-node latency", f"{network.inter_node_latency_s * 1e6:g} us",
         "per all-to-all that spans nodes"],
        ["intra-node latency", f"{network.intra_node_latency_s * 1e6:g} us",
         "per all-to-all within a node"],
    ]
    trainer = [s for s in summaries if s.comm_model == "trainer"]
    fallback = [s for s in summaries if s.comm_model != "trainer"]
    if summaries:
        rows.append(["modeled by the trainer", f"{len(trainer)} of {len(summaries)} runs",
                     "comm.modeled_ms: the C++ network model with each run's own link "
                     "parameters; modeled step = step_ms - comm.measured_ms + comm.modeled_ms"])
        rows.append(["modeled by this report", f"{len(fallback)} of {len(summaries)} runs",
                     "runs without comm.modeled_ms (older databases): the fallback below, with "
                     "the defaults above"])
        links = {}
        for s in trainer:
            if s.network is not None and s.network != network:
                links.setdefault(_link_text(s.network), []).append(s.run.id)
        for text, ids in sorted(links.items()):
            rows.append(["other link parameters", text + " (intra / inter)",
                         f"{len(ids)} runs: " + ", ".join(ids[:5]) +
                         (", ..." if len(ids) > 5 else "")])
    if summaries:
        profiles = {}
        for s in summaries:
            if s.compute_modeled:
                profiles.setdefault(s.time_basis(), []).append(s.run.id)
        measured = [s for s in summaries if not s.compute_modeled]
        for text, ids in sorted(profiles.items()):
            rows.append(["compute modeled", text, f"{len(ids)} of {len(summaries)} runs: "
                         "compute_modeled_ms (flops_per_step on the device profile); modeled "
                         "step = compute_modeled_ms + comm.modeled_ms, nothing measured here"])
        if measured:
            rows.append(["compute measured", "on this machine",
                         f"{len(measured)} of {len(summaries)} runs (no compute_modeled_ms): "
                         "their modeled cluster time has this machine's compute in it"])
    rows.append(["target BLEU", "-" if target is None else f"{target:g}",
                 "validation BLEU for 'time to target' (--target-bleu; default 0.8 x the median "
                 "final validation BLEU of the configurations)"])
    return Table("network", "Network model and target", ["parameter", "value", "note"], rows,
                 "Runs that log compute_modeled_ms: modeled step time = the step's counted "
                 "FLOPs on the run's device profile (Note [Compute model], "
                 "harness/model/compute_model.h) + the trainer's modeled communication "
                 "(comm.modeled_ms: every all-to-all and all-reduce under Note [Network model], "
                 "docs/network-model.md): step_modeled_ms, nothing of it measured here. Runs "
                 "that log comm.modeled_ms only: measured compute time (step_ms - "
                 "comm.measured_ms) + comm.modeled_ms. Older runs: modeled step "
                 "time = measured step time + wire other-node bytes / inter-node bandwidth + "
                 "wire same-node bytes / intra-node bandwidth + all-to-all calls x latency "
                 "(reports/network.py).")
