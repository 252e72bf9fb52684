"""python3 -m reports: the command line (also what `moebench report` runs)."""

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass

from reports import claims, db, figures, render, summary, tables
from reports.network import DEFAULT_NETWORK
from reports.style import Styler

FORMATS = ("png", "pdf", "svg")


@dataclass
class FigureContext:
    out_dir: str
    fmt: str
    target: object


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
    return p.parse_args(argv)


def significance_from_compare(database):
    """Paired bootstrap p-values through `moebench compare` (one BLEU implementation, the C++
    one), when the database stores per-sentence outputs and the binary is known."""
    binary = os.environ.get("MOEBENCH_BIN", "")

    def significance(run_pairs):
        if not database.has_outputs:
            return claims.NO_OUTPUTS
        if not binary:
            return "not measured (MOEBENCH_BIN not set: run through `moebench report`)"
        values = []
        for a, b in run_pairs:
            proc = subprocess.run([binary, "compare", "--db", database.path, b.id, a.id,
                                   "--format", "json"], capture_output=True, text=True)
            if proc.returncode != 0:
                return f"not measured ({proc.stderr.strip().splitlines()[-1:] or ['error']})"
            result = json.loads(proc.stdout).get("significance", {})
            if result.get("p_value") is None:
                return f"not measured ({result.get('note', 'no p-value')})"
            values.append(f"seed {a.seed}: p = {result['p_value']:.3f}")
        return "paired bootstrap, test BLEU: " + "; ".join(values)
    return significance


def build(args):
    data = db.load(args.db, args.sweep)
    network = DEFAULT_NETWORK
    summaries = [summary.summarize(run, network) for run in data.runs]
    finished = [s for s in summaries if s.run.status == "finished"]
    configs = summary.group_configs(finished)
    target = args.target_bleu if args.target_bleu is not None else \
        summary.default_target_bleu(configs)
    fig_dir = os.path.join(args.out, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    # Regenerating: drop figures of an earlier run of the report in any format.
    for name in figures.FIGURE_NAMES:
        for fmt in FORMATS:
            path = os.path.join(fig_dir, f"{name}.{fmt}")
            if os.path.exists(path):
                os.remove(path)
    styler = Styler(configs)
    drawn = figures.draw_all(configs, styler, FigureContext(fig_dir, args.format, target))
    claim_results = claims.check(configs, target, significance_from_compare(data))
    all_tables = [
        tables.claims_table(claim_results),
        tables.configs_table(configs, target),
        tables.runs_table(summaries, configs, target),
        tables.missing_table(data, summaries),
        tables.network_table(network, target, summaries),
        tables.signatures_table(summaries),
        tables.environment_table(data, summaries),
    ]
    render.write(args.out, data, args.sweep, all_tables, drawn, claim_results, len(summaries),
                 len(finished))
    return summaries, finished, claim_results


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summaries, finished, results = build(args)
    except db.ReportError as e:
        print(f"moebench report: error: {e}", file=sys.stderr)
        return 2
    counts = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    print(f"report: {len(summaries)} runs ({len(finished)} finished) from {args.db}")
    print("claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    print(f"network model: {DEFAULT_NETWORK.describe()}")
    print(f"wrote {os.path.join(args.out, 'index.html')}, "
          f"{os.path.join(args.out, 'summary.md')} and {len(figures.FIGURE_NAMES)} figures in "
          f"{os.path.join(args.out, 'figures')}")
    return 0
