"""One colour per method, the same in every figure; variants of a method differ by line
style and marker, never by colour."""

# matplotlib's tab10, assigned by hand so that a method keeps its colour whichever methods a
# sweep happens to contain.
METHOD_COLORS = {
    "switch": "#1f77b4",
    "gshard": "#ff7f0e",
    "expert_choice": "#2ca02c",
    "thor": "#d62728",
    "smoe_dropout": "#9467bd",
    "gating_dropout": "#8c564b",
    "uniform": "#7f7f7f",
}
# For methods added later, in order of their names.
SPARE_COLORS = ["#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39"]

LINESTYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def method_colors(methods):
    """Colour of every method in `methods` (known ones fixed; others from SPARE_COLORS)."""
    colors = {}
    spare = iter(SPARE_COLORS * 4)
    for m in sorted(set(methods)):
        colors[m] = METHOD_COLORS[m] if m in METHOD_COLORS else next(spare)
    return colors


class Styler:
    """Colour by method, line style and marker by variant within the method."""

    def __init__(self, configs):
        self.colors = method_colors(c.method for c in configs)
        self.variant = {}
        counts = {}
        for c in configs:
            i = counts.get(c.method, 0)
            counts[c.method] = i + 1
            self.variant[c.key] = i

    def color(self, config):
        return self.colors[config.method]

    def line(self, config):
        i = self.variant.get(config.key, 0)
        return dict(color=self.colors[config.method], linestyle=LINESTYLES[i % len(LINESTYLES)],
                    marker=MARKERS[i % len(MARKERS)], markersize=4)
