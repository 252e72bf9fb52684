"""python3 -m reports: the command line (also what `moebench report` runs)."""

import argparse
import os
import sys
from dataclasses import dataclass

from reports import bleu_test, claims, db, figures, render, summary, tables
from reports.network import DEFAULT_NETWORK
from reports.style import Styler

FORMATS = ("png", "pdf", "svg")


@dataclass
class FigureContext:
    out_dir: str
    fmt: str
    target: object
    column: str = "two"  # figures.COLUMNS: the paper width every figure is drawn at


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="moebench report",
        description="Figures, tables and the claims check from a moebench results database "
                    "(opened read-only). Writes OUT/index.html, OUT/summary.md, "
                    "OUT/summary.json and OUT/figures/*.")
    p.add_argument("--db", default="results/moebench.db", help="results database (SQLite)")
    p.add_argument("--sweep", action="append", default=[],
                   help="only runs of this sweep (name or id; repeatable; default: all runs)")
    p.add_argument("--out", default="reports-out", help="output folder (created)")
    p.add_argument("--format", default="png", choices=FORMATS, help="figure file format")
    p.add_argument("--target-bleu", type=float, default=None,
                   help="validation BLEU for 'time to target' (default: 0.8 x the median final "
                        "validation BLEU of the configurations)")
    p.add_argument("--alpha", type=_alpha, default=claims.DEFAULT_ALPHA,
                   help="significance level of the claims' verdicts, after Holm-Bonferroni "
                        "adjustment over the claims tested (default 0.05)")
    p.add_argument("--bootstrap-samples", type=_positive, default=bleu_test.DEFAULT_SAMPLES,
                   help="resamples of the paired bootstrap on BLEU (default 1000)")
    p.add_argument("--column", choices=tuple(figures.COLUMNS), default="two",
                   help="paper width of every figure: one (one column of a two-column paper, "
                        f"{figures.COLUMNS['one']:g} in; panels stacked) or two (the full text "
                        f"width, {figures.COLUMNS['two']:g} in; panels side by side); fonts "
                        f"{figures.FONT_PT:g} pt either way")
    p.add_argument("--figure", choices=figures.FIGURE_NAMES, default=None,
                   help="draw only this figure into OUT/figures (in --format, PDF and SVG); "
                        "no tables, claims or page")
    p.add_argument("--no-figures", action="store_true",
                   help="tables, claims and page without figures (matplotlib drawing every "
                        "figure in 3 formats is most of a report's time)")
    p.add_argument("--run-ids", default=None,
                   help="only these runs (comma-separated ids; `moebench report --where` "
                        "passes the runs its filter selects)")
    args = p.parse_args(argv)
    if args.no_figures and args.figure is not None:
        p.error("--figure draws one figure and --no-figures none: give one of them")
    return args


def _alpha(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"--alpha must be in (0, 1), got {text}")
    return value


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def bleu_significance(database, samples):
    """The BLEU claims' test: a pooled paired bootstrap by the C++ BLEU (`moebench bleu`,
    reports/bleu_test.py), when the database stores per-sentence outputs."""
    if not database.has_outputs:
        return bleu_test.no_bleu_test(claims.NO_OUTPUTS)
    return bleu_test.make_bleu_test(database.path, os.environ.get("MOEBENCH_BIN", ""),
                                    samples=samples)


def build(args):
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise db.ReportError(f"--out {args.out} is a file; give a folder (it is created when "
                             "missing)")
    data = db.load(args.db, args.sweep)
    if args.run_ids:
        wanted = set(args.run_ids.split(","))
        data.runs = [r for r in data.runs if r.id in wanted]
        if not data.runs:
            raise db.ReportError(f"{args.db}: none of the --run-ids is in the selection")
    network = DEFAULT_NETWORK
    summaries = [summary.summarize(run, network) for run in data.runs]
    finished = [s for s in summaries if s.run.status == "finished"]
    configs = summary.group_configs(finished, selection=data.runs)
    target = args.target_bleu if args.target_bleu is not None else \
        summary.default_target_bleu(configs)
    fig_dir = os.path.join(args.out, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    if args.figure is not None:
        drawn = figures.draw_all(configs, Styler(configs),
                                 FigureContext(fig_dir, args.format, target, args.column),
                                 only=args.figure)
        return summaries, finished, None, drawn
    # Regenerating: drop figures of an earlier run of the report in any format.
    for name in figures.FIGURE_NAMES:
        for fmt in FORMATS:
            path = os.path.join(fig_dir, f"{name}.{fmt}")
            if os.path.exists(path):
                os.remove(path)
    drawn = [] if args.no_figures else figures.draw_all(
        configs, Styler(configs), FigureContext(fig_dir, args.format, target, args.column))
    claim_results = claims.check(configs, target, bleu_significance(data, args.bootstrap_samples),
                                 alpha=args.alpha)
    all_tables = [
        tables.claims_table(claim_results, args.alpha),
        tables.configs_table(configs, target),
        tables.runs_table(summaries, configs, target),
        tables.missing_table(data, summaries),
        tables.network_table(network, target, summaries),
        tables.signatures_table(summaries),
        tables.environment_table(data, summaries),
    ]
    render.write(args.out, data, args.sweep, all_tables, drawn, claim_results, len(summaries),
                 len(finished), args.alpha)
    return summaries, finished, claim_results, drawn


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summaries, finished, results, drawn = build(args)
    except db.ReportError as e:
        print(f"moebench report: error: {e}", file=sys.stderr)
        return 2
    if results is None:
        for f in drawn:
            stem = os.path.splitext(f.path)[0]
            written = [f.path] + [f"{stem}.{v}" for v in figures.VECTOR_FORMATS
                                  if v != args.format]
            print(f"report: {f.name} from {len(finished)} finished runs: " + ", ".join(written))
        return 0
    counts = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    print(f"report: {len(summaries)} runs ({len(finished)} finished) from {args.db}")
    tested = sum(1 for r in results if r.p is not None)
    print("claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()) +
          f" (alpha {args.alpha:g}, Holm-Bonferroni over the {tested} claims tested)")
    print(f"network model: {DEFAULT_NETWORK.describe()}")
    wrote = (f"wrote {os.path.join(args.out, 'index.html')}, "
             f"{os.path.join(args.out, 'summary.md')} and ")
    if args.no_figures:
        print(wrote + "no figures (--no-figures)")
    else:
        print(wrote + f"{len(drawn)} figures in {os.path.join(args.out, 'figures')} "
              "(each also as PDF and SVG)")
    return 0
