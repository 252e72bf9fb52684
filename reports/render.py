"""Writes the report: index.html (every figure and table), summary.md (the tables that matter
most, figures linked) and summary.json (the same, for scripts and tests)."""

import datetime
import html
import json
import os

CSS = """
body { font-family: sans-serif; margin: 2em; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.supported { background: #d9f2d9; } td.opposite { background: #f8d7d7; }
td.direction-agrees-not-significant { background: #fdf3d0; }
td.not-measured { background: #eeeeee; }
figure { margin: 1em 0 2em; } figcaption { font-size: 13px; color: #333; max-width: 60em; }
img { max-width: 100%; } .note { font-size: 13px; color: #444; max-width: 70em; }
"""


def _cell_class(table, column, value):
    if table.id == "claims" and column == "verdict":
        return ' class="' + value.replace(",", "").replace(" ", "-") + '"'
    return ""


def _html_table(table):
    out = [f'<h2 id="{table.id}">{html.escape(table.title)}</h2>']
    if table.note:
        out.append(f'<p class="note">{html.escape(table.note)}</p>')
    out.append(f'<table id="table-{table.id}"><tr>' +
               "".join(f"<th>{html.escape(c)}</th>" for c in table.columns) + "</tr>")
    for row in table.rows:
        out.append("<tr>" + "".join(
            f"<td{_cell_class(table, col, val)}>{html.escape(val)}</td>"
            for col, val in zip(table.columns, row)) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _html_figure(fig, out_dir):
    rel = os.path.relpath(fig.path, out_dir)
    if rel.endswith(".pdf"):
        body = (f'<object data="{html.escape(rel)}" type="application/pdf" width="100%" '
                f'height="480"><a href="{html.escape(rel)}">{html.escape(rel)}</a></object>')
    else:
        body = f'<img src="{html.escape(rel)}" alt="{html.escape(fig.title)}">'
    return (f'<figure id="figure-{fig.name}">{body}<figcaption><b>{html.escape(fig.title)}.'
            f'</b> {html.escape(fig.caption)} (<a href="{html.escape(rel)}">'
            f'{html.escape(rel)}</a>)</figcaption></figure>')


def _md_escape(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(table):
    out = [f"## {table.title}", ""]
    if table.note:
        out += [table.note, ""]
    if not table.rows:
        return "\n".join(out + ["(none)", ""])
    out.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
    out.append("|" + "---|" * len(table.columns))
    for row in table.rows:
        out.append("| " + " | ".join(_md_escape(v) for v in row) + " |")
    return "\n".join(out + [""])


def _heading(db, selection, n_runs, n_finished):
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    what = f"sweeps {', '.join(selection)}" if selection else "all runs"
    return (f"Database {db.path} ({what}): {n_runs} runs, {n_finished} finished. "
            f"Generated {when} by reports/ (read-only).")


NO_FIGURES = "No figures: the report ran with --no-figures."


def write(out_dir, db, selection, tables, figures, claim_results, n_runs, n_finished,
          alpha=0.05):
    heading = _heading(db, selection, n_runs, n_finished)
    by_id = {t.id: t for t in tables}
    html_order = ["claims", "configurations", "runs", "missing", "network", "signatures",
                  "environment"]
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
             "<title>moebench report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>moebench report</h1>", f'<p class="note">{html.escape(heading)}</p>',
             "<p>" + " · ".join(f'<a href="#{t}">{html.escape(by_id[t].title)}</a>'
                                for t in html_order if t in by_id) + " · "
             + '<a href="#figures">Figures</a></p>']
    for tid in html_order[:2]:
        parts.append(_html_table(by_id[tid]))
    parts.append('<h2 id="figures">Figures</h2>')
    if not figures:
        parts.append(f'<p class="note">{NO_FIGURES}</p>')
    for fig in figures:
        parts.append(_html_figure(fig, out_dir))
    for tid in html_order[2:]:
        if tid in by_id:
            parts.append(_html_table(by_id[tid]))
    parts.append("</body></html>")
    with open(os.path.join(out_dir, "index.html"), "w", encoding="utf-8") as f:
        f.write("\n".join(parts))

    md = ["# moebench report", "", heading, ""]
    for tid in ("claims", "configurations", "missing", "network", "signatures", "environment"):
        md.append(_md_table(by_id[tid]))
    md += ["## Figures", ""]
    if not figures:
        md += [NO_FIGURES, ""]
    for fig in figures:
        rel = os.path.relpath(fig.path, out_dir)
        if rel.endswith(".pdf"):
            md.append(f"- [{fig.title}]({rel}): {fig.caption}")
        else:
            md += [f"### {fig.title}", "", f"![{fig.title}]({rel})", "", fig.caption, ""]
    md += ["", "Per-run details: index.html (table Runs).", ""]
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md))

    summary = {
        "database": db.path, "schema_version": db.schema_version, "sweeps": selection,
        "runs": n_runs, "finished": n_finished, "alpha": alpha,
        "claims_tested": sum(1 for r in claim_results if r.p is not None),
        "multiplicity": "Holm-Bonferroni over the claims tested",
        "figures": [{"name": f.name, "file": os.path.relpath(f.path, out_dir), "title": f.title}
                    for f in figures],
        "tables": {t.id: {"columns": t.columns, "rows": t.rows} for t in tables},
        "claims": [{"id": r.claim.id, "paper": r.claim.paper, "claim": r.claim.statement,
                    "verdict": r.verdict, "measured": r.measured,
                    "significance": r.significance, "missing": r.missing, "p": r.p,
                    "p_holm": r.p_holm, "seeds": r.seeds,
                    "comparisons": [{"label": c.label, "seeds": c.seeds, "effect": c.effect,
                                     "ci95": [c.lo, c.hi],
                                     "sentence_ci95": [c.sentence_lo, c.sentence_hi],
                                     "p": c.p, "agrees": c.agrees,
                                     "test": c.test} for c in r.comparisons]}
                   for r in claim_results],
    }
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
