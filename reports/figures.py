"""The figures. Each function draws one file and returns a Figure record; a figure whose data
this sweep does not have is still drawn, as a panel that says what is missing, so the set of
files is the same for every database.

Seeds are aggregated as their mean (line) and the 95% Student-t interval of the mean over
seeds (shaded band, or error bars; none with one seed), as `moebench runs --group-by` does.
"""

import os
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reports.summary import aggregate_curve, ci95_half_width  # noqa: E402

# Paper figures. Every figure is drawn at one paper width, chosen by `--column` (COLUMNS): "one",
# one column of a two-column paper (3.4 in; a figure of two panels stacks them), or "two" (the
# default), the full text width of a two-column paper (7 in; panels side by side). Included at
# that width (\columnwidth or \textwidth, no scaling), every figure's text has the same size:
# one font scale, FONT_PT for text, labels and titles and SMALL_PT for ticks, legends and
# annotations, whatever the width. TrueType fonts are embedded in PDF (editable text, accepted
# by conference checkers) and SVG keeps real text.
COLUMNS = {"one": 3.4, "two": 7.0}
FONT_PT = 8
SMALL_PT = 7
PAPER_RC = {
    "font.family": "DejaVu Sans",
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "legend.fontsize": SMALL_PT,
    "xtick.labelsize": SMALL_PT,
    "ytick.labelsize": SMALL_PT,
    "figure.titlesize": FONT_PT,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}
matplotlib.rcParams.update(PAPER_RC)
# Every figure is written in the report's --format and also as vector PDF and SVG.
VECTOR_FORMATS = ("pdf", "svg")

DPI = 200
MAX_HEATMAP_CONFIGS = 8
MAX_LAYER_PANELS = 12


@dataclass
class Figure:
    name: str  # file stem
    path: str
    title: str
    caption: str


def _width(ctx):
    """The paper width of the figures, in inches (--column)."""
    return COLUMNS[ctx.column]


def _single(ctx, height):
    """A figure of one panel at the paper width."""
    return plt.subplots(figsize=(_width(ctx), height))


def _pair(ctx, height):
    """A figure of two panels of `height`: side by side at the full text width, stacked in one
    column."""
    if ctx.column == "one":
        return plt.subplots(2, 1, figsize=(_width(ctx), 2 * height))
    return plt.subplots(1, 2, figsize=(_width(ctx), height))


def _missing(ax, message):
    ax.text(0.5, 0.5, "not measured by this sweep:\n" + message, ha="center", va="center",
            transform=ax.transAxes, wrap=True, fontsize=FONT_PT, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax, n):
    if n:
        ax.legend(fontsize=SMALL_PT, loc="best", frameon=False)


def _save(fig, out_dir, name, fmt, title, caption, tight=True):
    """Writes the figure in `fmt` and as every VECTOR_FORMATS, at its own size (no bounding-box
    cropping, so the paper width stays exact). `tight`: lay out with tight_layout (figures made
    with constrained_layout lay themselves out)."""
    path = os.path.join(out_dir, f"{name}.{fmt}")
    fig.suptitle(title)
    if tight:
        fig.tight_layout()
    fig.savefig(path, format=fmt, dpi=DPI)
    for vector in VECTOR_FORMATS:
        if vector != fmt:
            fig.savefig(os.path.join(out_dir, f"{name}.{vector}"), format=vector)
    plt.close(fig)
    return Figure(name=name, path=path, title=title, caption=caption)


def _curve_panel(ax, configs, styler, curve_of, xlabel, ylabel, missing):
    drawn = 0
    for c in configs:
        agg = aggregate_curve([curve_of(r) for r in c.runs])
        if not agg:
            continue
        xs = [a[1] for a in agg]
        ax.plot(xs, [a[2] for a in agg], label=f"{c.label} (n={len(c.runs)})", **styler.line(c))
        ax.fill_between(xs, [a[3] for a in agg], [a[4] for a in agg],
                        color=styler.color(c), alpha=0.18, linewidth=0)
        drawn += 1
    if not drawn:
        _missing(ax, missing)
        return
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend(ax, drawn)


def modeled_basis(configs):
    """What the modeled cluster time of these runs is made of, for axis labels: the device
    profiles when every run models its compute (compute_modeled_ms), else measured compute."""
    runs = [r for c in configs for r in c.runs]
    bases = {r.time_basis() for r in runs}
    if len(bases) == 1:
        return bases.pop()
    return "mixed: " + "; ".join(sorted(bases))


def bleu_vs_wallclock(configs, styler, ctx):
    fig, axes = _pair(ctx, 2.9)
    missing = "no validation BLEU (runs with --valid-sentences > 0)"
    _curve_panel(axes[0], configs, styler, lambda r: [(s, w, b) for s, w, b in r.valid_curve],
                 "training wall-clock (s)\nmeasured on this machine, evaluation excluded",
                 "validation BLEU", missing)
    _curve_panel(axes[1], configs, styler,
                 lambda r: [(s, r.modeled_seconds(s, w), b) for s, w, b in r.valid_curve],
                 f"modeled cluster wall-clock (s)\n{modeled_basis(configs)}", "validation BLEU",
                 missing)
    if ctx.target is not None:
        for ax in axes:
            if ax.lines:
                ax.axhline(ctx.target, color="black", linewidth=0.8, linestyle=":")
    return _save(fig, ctx.out_dir, "bleu_vs_wallclock", ctx.fmt,
                 "Validation BLEU against training wall-clock",
                 "Mean over seeds (line) and 95% Student-t interval over seeds (band). Left: measured training time on "
                 "this machine; right: modeled cluster time (" + modeled_basis(configs) +
                 "; network model below). Dotted: the target BLEU.")


def bleu_vs_steps(configs, styler, ctx):
    fig, ax = _single(ctx, 2.8)
    _curve_panel(ax, configs, styler, lambda r: [(s, s, b) for s, w, b in r.valid_curve],
                 "training step", "validation BLEU",
                 "no validation BLEU (runs with --valid-sentences > 0)")
    return _save(fig, ctx.out_dir, "bleu_vs_steps", ctx.fmt,
                 "Validation BLEU against training steps",
                 "Mean over seeds (line) and 95% Student-t interval over seeds (band).")


def time_to_target(configs, styler, ctx):
    fig, ax = _single(ctx, 0.9 + 0.3 * max(len(configs), 2))
    rows = []
    for c in configs:
        reached = [r.reach(ctx.target) for r in c.runs]
        measured = [x[1] for x in reached if x is not None]
        modeled = [x[2] for x in reached if x is not None]
        rows.append((c, measured, modeled, len(c.runs)))
    if ctx.target is None or not any(r[1] for r in rows):
        _missing(ax, "no configuration reached a target BLEU" if ctx.target is not None
                 else "no validation BLEU above 0 to set a target")
    else:
        height = 0.38
        for i, (c, measured, modeled, n) in enumerate(rows):
            if not modeled:
                ax.text(0, i, "  not reached", va="center", fontsize=FONT_PT)
                continue
            for offset, values, hatch in ((-height / 2, modeled, None),
                                          (height / 2, measured, "//")):
                m = sum(values) / len(values)
                ax.barh(i + offset, m, height=height, color=styler.color(c), hatch=hatch,
                        alpha=0.9 if hatch is None else 0.45, edgecolor="black", linewidth=0.4,
                        xerr=[[ci95_half_width(values) or 0.0]] * 2, capsize=2)
            if len(modeled) < n:
                ax.text(max(modeled), i, f"  {n - len(modeled)}/{n} seeds not reached",
                        va="center", fontsize=SMALL_PT)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r[0].label for r in rows], fontsize=FONT_PT)
        ax.invert_yaxis()
        ax.set_xlabel(f"seconds to validation BLEU {ctx.target:g} (solid: modeled cluster; "
                      f"hatched: measured on this machine)")
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, ctx.out_dir, "time_to_target", ctx.fmt,
                 "Wall-clock to the target BLEU",
                 f"Time at the first validation with BLEU >= {ctx.target} (mean over the seeds "
                 "that reached it, 95% t-interval bars). Solid: modeled cluster wall-clock (" +
                 modeled_basis(configs) + "); hatched: measured on this machine."
                 if ctx.target is not None else
                 "No target BLEU: no validation BLEU above 0.")


def comm_bytes(configs, styler, ctx):
    fig, axes = _pair(ctx, 2.9)
    panels = [(axes[0], ("same_worker", "same_node", "other_node"), "logical (routed rows)"),
              (axes[1], ("wire_same_node", "wire_other_node"), "wire (as sent; padding included)")]
    have = [c for c in configs if any(r.bytes_per_step.get("same_worker") is not None
                                      for r in c.runs)]
    for ax, classes, what in panels:
        if not have:
            _missing(ax, "no communication metrics (comm.*) logged")
            continue
        width = 0.8 / len(have)
        for j, c in enumerate(have):
            means, los, his = [], [], []
            for cls in classes:
                st = c.stat(lambda r, cls=cls: r.bytes_per_step.get(cls))
                means.append((st.mean or 0) / 1e6)
                los.append(((st.mean or 0) - (st.band_lo or 0)) / 1e6)
                his.append(((st.band_hi or 0) - (st.mean or 0)) / 1e6)
            xs = [i - 0.4 + width * (j + 0.5) for i in range(len(classes))]
            ax.bar(xs, means, width=width, color=styler.color(c), edgecolor="black",
                   linewidth=0.3, yerr=[los, his], capsize=2,
                   label=f"{c.label} (n={len(c.runs)})",
                   hatch=["", "//", "..", "xx"][styler.variant.get(c.key, 0) % 4])
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels([cl.replace("wire_", "").replace("_", " ") for cl in classes])
        ax.set_ylabel("MB per training step (10^6 bytes)")
        ax.set_title(what, fontsize=FONT_PT)
        ax.grid(axis="y", alpha=0.3)
        _legend(ax, len(have))
    return _save(fig, ctx.out_dir, "comm_bytes", ctx.fmt,
                 "All-to-all bytes per training step by class",
                 "Forward and backward all-to-alls of every MoE layer, averaged over training "
                 "steps; mean over seeds with 95% t-interval bars.")


def bleu_vs_size(configs, styler, ctx):
    fig, axes = _pair(ctx, 2.9)
    # One line per method and variant other than size.
    lines = {}
    for c in configs:
        spec = {k: v for k, v in c.spec.items() if k not in ("size", "num_experts")}
        lines.setdefault((c.method, repr(sorted(spec.items(), key=str))), []).append(c)
    sizes = {c.spec.get("size") for c in configs}
    for ax, attr, what in ((axes[0], "params_total", "total"),
                           (axes[1], "params_active", "active per token")):
        drawn = 0
        for group in lines.values():
            pts = []
            for c in group:
                st = c.stat(lambda r: r.bleu())
                x = c.runs[0].run.__dict__[attr] if c.runs else 0
                if st.mean is not None and x > 0:
                    pts.append((x, st.mean, st.band_lo, st.band_hi, c))
            if not pts:
                continue
            pts.sort(key=lambda p: p[0])
            c0 = pts[0][4]
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                        yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                        capsize=2, label=c0.label, **styler.line(c0))
            drawn += 1
        if not drawn:
            _missing(ax, "no finished run with BLEU")
            continue
        ax.set_xscale("log")
        ax.set_xlabel(f"parameters, {what} (log scale)")
        ax.set_ylabel("BLEU (test, else last validation)")
        ax.grid(alpha=0.3)
        _legend(ax, drawn)
    note = "" if len(sizes) > 1 else " Only one model size in this sweep."
    return _save(fig, ctx.out_dir, "bleu_vs_size", ctx.fmt, "BLEU against model size",
                 "Mean over seeds with 95% t-interval bars; one line per method variant across "
                 "sizes and expert counts." + note)


def self_slimmable(configs, styler, ctx):
    fig, ax = _single(ctx, 2.8)
    drawn = 0
    for c in configs:
        ks = sorted({k for r in c.runs for k in r.k_curve})
        if not ks:
            continue
        means, los, his = [], [], []
        ks = [k for k in ks if c.stat(lambda r, k=k: r.k_curve.get(k)).mean is not None]
        if not ks:
            continue
        for k in ks:
            st = c.stat(lambda r, k=k: r.k_curve.get(k))
            means.append(st.mean)
            los.append(st.mean - st.band_lo)
            his.append(st.band_hi - st.mean)
        ax.errorbar(ks, means, yerr=[los, his], capsize=2,
                    label=f"{c.label} ({c.runs[0].k_split})", **styler.line(c))
        drawn += 1
    if not drawn:
        _missing(ax, "no evaluation at more than one k\n(evals rows with k > 0: "
                 "decode at several k after training)")
    else:
        ax.set_xlabel("experts activated per token at inference (k)")
        ax.set_ylabel("BLEU")
        ax.grid(alpha=0.3)
        _legend(ax, drawn)
    return _save(fig, ctx.out_dir, "self_slimmable", ctx.fmt,
                 "BLEU against experts activated at inference",
                 "SMoE-Dropout's self-slimmable curve, for every method evaluated at several "
                 "k (mean over seeds, 95% t-interval bars).")


def expert_load(configs, styler, ctx):
    shown = [c for c in configs if c.runs and c.runs[0].run.expert_load][:MAX_HEATMAP_CONFIGS]
    layers = sorted({layer for c in shown for layer in c.runs[0].run.expert_load})
    if not shown:
        fig, ax = _single(ctx, 2.2)
        _missing(ax, "no expert_load rows")
        return _save(fig, ctx.out_dir, "expert_load", ctx.fmt, "Expert load over training",
                     "No expert load recorded.")
    fig, axes = plt.subplots(len(shown), len(layers), squeeze=False, constrained_layout=True,
                             figsize=(_width(ctx), 2.5 * len(shown) + 0.6))
    image = None
    for i, c in enumerate(shown):
        run = c.runs[0].run
        for j, layer in enumerate(layers):
            ax = axes[i][j]
            per_step = run.expert_load.get(layer, {})
            if not per_step:
                _missing(ax, "no rows")
                continue
            steps = sorted(per_step)
            n_exp = max(len(v) for v in per_step.values())
            grid = []
            for e in range(n_exp):
                row = []
                for s in steps:
                    v = per_step[s]
                    total = sum(v) or 1
                    row.append((v[e] if e < len(v) else 0) / total)
                grid.append(row)
            image = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                              origin="lower", interpolation="nearest",
                              extent=(steps[0], steps[-1], -0.5, n_exp - 0.5)
                              if len(steps) > 1 else None)
            ax.set_title(f"{c.label}\nseed {run.seed}, MoE layer {layer}", fontsize=SMALL_PT,
                         color=styler.color(c))
            ax.set_yticks(range(n_exp))
            ax.set_xlabel("step", fontsize=SMALL_PT)
            ax.set_ylabel("expert", fontsize=SMALL_PT)
            ax.tick_params(labelsize=SMALL_PT)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="share of the layer's routed tokens")
    omitted = len([c for c in configs if c.runs and c.runs[0].run.expert_load]) - len(shown)
    return _save(fig, ctx.out_dir, "expert_load", ctx.fmt,
                 "Expert load per MoE layer over training",
                 "Share of each layer's routed tokens per expert in each logging window (one "
                 "seed per configuration: the lowest)." +
                 (f" {omitted} configurations not shown." if omitted > 0 else ""), tight=False)


def dropped_tokens(configs, styler, ctx):
    layers = sorted({key.split(".")[1] for c in configs for r in c.runs
                     for key in r.run.metrics
                     if key.startswith("moe.") and key.endswith(".dropped_frac")},
                    key=lambda s: (len(s), s))[:MAX_LAYER_PANELS]
    if not layers:
        fig, ax = _single(ctx, 2.2)
        _missing(ax, "no moe.<layer>.dropped_frac metrics")
        return _save(fig, ctx.out_dir, "dropped_tokens", ctx.fmt, "Dropped-token fraction",
                     "Not recorded.")
    cols = min(len(layers), 3 if ctx.column == "two" else 2)
    rows = (len(layers) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, squeeze=False, figsize=(_width(ctx), 2.3 * rows))
    for idx, layer in enumerate(layers):
        ax = axes[idx // cols][idx % cols]
        key = f"moe.{layer}.dropped_frac"
        _curve_panel(ax, configs, styler,
                     lambda r, key=key: [(s, s, v) for s, w, v in r.run.metrics.get(key, [])],
                     "training step", "dropped fraction of routed tokens",
                     f"no {key}")
        ax.set_title(f"MoE layer {layer}", fontsize=FONT_PT)
    for idx in range(len(layers), rows * cols):
        axes[idx // cols][idx % cols].axis("off")
    return _save(fig, ctx.out_dir, "dropped_tokens", ctx.fmt,
                 "Dropped-token fraction per MoE layer",
                 "Tokens that found their expert full, per logging window; mean over seeds "
                 "with 95% Student-t interval band.")


def train_loss(configs, styler, ctx):
    fig, axes = _pair(ctx, 2.9)
    missing = "no train_loss metric"
    _curve_panel(axes[0], configs, styler,
                 lambda r: [(s, s, v) for s, w, v in r.run.metrics.get("train_loss", [])],
                 "training step", "training loss (label-smoothed CE per token, nats)", missing)
    _curve_panel(axes[1], configs, styler,
                 lambda r: [(s, w, v) for s, w, v in r.run.metrics.get("train_loss", [])],
                 "training wall-clock, measured (s)",
                 "training loss (label-smoothed CE per token, nats)", missing)
    return _save(fig, ctx.out_dir, "train_loss", ctx.fmt, "Training loss",
                 "Mean over seeds (line) and 95% Student-t interval over seeds (band) of each logging window's loss.")


def _spec_values(config):
    """A configuration's values that a sweep may vary: run-spec fields, and knobs by name."""
    values = {k: v for k, v in config.spec.items() if k not in ("knobs", "method")}
    for k, v in config.spec.get("knobs", {}).items():
        values[f"knobs.{k}"] = v
    return values


def _as_number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def knob_sweep(configs, styler, ctx):
    """Parallel coordinates: one axis per knob or field that varies between the
    configurations, the last one the headline metric; one line per configuration."""
    fig, ax = _single(ctx, 2.9)
    rows = []
    for c in configs:
        st = c.stat(lambda r: r.headline_test)
        metric = "test BLEU (headline)"
        if st.mean is None:
            st = c.stat(lambda r: r.final_valid_bleu)
            metric = "validation BLEU"
        if st.mean is not None:
            rows.append((c, _spec_values(c), st.mean, metric))
    keys = sorted({k for _, values, _, _ in rows for k in values})
    varying = [k for k in keys
               if len({json_key(values.get(k)) for _, values, _, _ in rows}) > 1]
    if len(rows) < 2 or not varying:
        _missing(ax, "no knob or run-spec field varies between configurations with a BLEU\n"
                 "(a sweep over knobs, e.g. switch.capacity_factor = [1.0, 2.0])")
        return _save(fig, ctx.out_dir, "knob_sweep", ctx.fmt, "Knobs against BLEU",
                     "Not drawn: nothing varies.")
    metric_name = rows[0][3] if len({r[3] for r in rows}) == 1 else "BLEU (test, else valid)"
    axes_keys = varying + [metric_name]
    columns = []  # per axis: (position of each row in [0, 1], tick labels)
    for k in axes_keys:
        raw = [r[2] if k == metric_name else r[1].get(k) for r in rows]
        numbers = [_as_number(v) for v in raw]
        if all(n is not None for n in numbers):
            lo, hi = min(numbers), max(numbers)
            span = (hi - lo) or 1.0
            columns.append(([(n - lo) / span for n in numbers],
                            {0.0: f"{lo:g}", 1.0: f"{hi:g}"}))
        else:
            levels = sorted({json_key(v) for v in raw})
            step = 1.0 / max(len(levels) - 1, 1)
            pos = [levels.index(json_key(v)) * step for v in raw]
            columns.append((pos, {i * step: lv for i, lv in enumerate(levels)}))
    xs = list(range(len(axes_keys)))
    seen = set()
    for i, (c, _, _, _) in enumerate(rows):
        label = c.method if c.method not in seen else None
        seen.add(c.method)
        ax.plot(xs, [col[0][i] for col in columns], color=styler.color(c), alpha=0.8,
                marker="o", markersize=3, label=label)
    for x, (_, ticks) in zip(xs, columns):
        ax.axvline(x, color="black", linewidth=0.6)
        for y, text in ticks.items():
            ax.text(x + 0.03, y, str(text), fontsize=SMALL_PT, va="center")
    ax.set_xticks(xs)
    ax.set_xticklabels(axes_keys, rotation=20, ha="right")
    ax.set_yticks([])
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    _legend(ax, len(seen))
    return _save(fig, ctx.out_dir, "knob_sweep", ctx.fmt, "Knobs against BLEU",
                 "Parallel coordinates: one axis per knob or run-spec field that varies "
                 "between configurations (each scaled from its smallest to its largest value; "
                 "text values in order), the last axis the configuration's mean BLEU over its "
                 "seeds; one line per configuration, coloured by method.")


def json_key(value):
    return value if isinstance(value, str) else repr(value)


# In the order of the report page.
ALL_FIGURES = (bleu_vs_wallclock, bleu_vs_steps, time_to_target, comm_bytes, bleu_vs_size,
               self_slimmable, expert_load, dropped_tokens, train_loss, knob_sweep)
FIGURE_NAMES = tuple(f.__name__ for f in ALL_FIGURES)


def draw_all(configs, styler, ctx, only=None):
    """Every figure, or only the one named `only` (a FIGURE_NAMES entry)."""
    return [f(configs, styler, ctx) for f in ALL_FIGURES if only is None or f.__name__ == only]
