"""A grid's committed results CSV -> summary statistics, paired comparisons, markdown tables, figures.

Everything a README shows of a grid is computed here from its CSV alone (`tools/sweep.py` writes
the CSV; `tests/tools/test_results_tables.py` checks that each README table is what its CSV gives).

The CSV has one row per run (a cell at one seed). Its first columns are FIXED_COLUMNS
(grid, cell, seed, commit, dirty, iterations, images_seen, wall_s, knn_top1, linear_top1), then the
grid's labels and monitors, sorted by name. The curve CSV has one row per evaluation of a run
(CURVE_COLUMNS).
"""

import csv
import math
import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from scipy import stats

from ssl_lab.utils.errors import UserError
from ssl_lab.utils.files import atomic_write

FIXED_COLUMNS = ["grid", "cell", "seed", "commit", "dirty", "iterations", "images_seen", "wall_s", "knn_top1", "linear_top1"]
CURVE_COLUMNS = ["grid", "cell", "seed", "commit", "iteration", "knn_top1", "linear_top1"]
ACCURACIES = ["knn_top1", "linear_top1"]
RANDOM_INIT = "random_init"


# ------------------------------------------------------------------------------------------- the CSV
def write_rows(path: str, rows: List[dict], labels: Sequence[str], monitors: Sequence[str]) -> None:
    """Write `rows` (dicts with the fixed columns, "labels" and "values") to `path`, atomically."""
    _write(path, [*FIXED_COLUMNS, *labels, *monitors], [{**row, **row.get("labels", {}), **row.get("values", {})} for row in rows])


def write_curve(path: str, points: List[dict]) -> None:
    """Write the curve rows (dicts with CURVE_COLUMNS) to `path`, atomically."""
    _write(path, CURVE_COLUMNS, points)


def _write(path: str, columns: Sequence[str], rows: List[dict]) -> None:
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format_cell(row.get(c, "")) for c in columns])


def _format_cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else ""
    return str(value)


def read_rows(path: str) -> List[dict]:
    """The CSV's rows: fixed columns typed (seed/iterations/images_seen int, dirty bool, wall_s and
    accuracies float or None), every other column in "extra" as a string (float where it parses)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FIXED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing or (reader.fieldnames or [])[: len(FIXED_COLUMNS)] != FIXED_COLUMNS:
            raise UserError(f"{path}: a results CSV starts with the columns {','.join(FIXED_COLUMNS)}")
        rows = []
        for raw in reader:
            rows.append(
                {
                    "grid": raw["grid"],
                    "cell": raw["cell"],
                    "seed": int(raw["seed"]),
                    "commit": raw["commit"],
                    "dirty": raw["dirty"] == "true",
                    "iterations": int(raw["iterations"]),
                    "images_seen": int(raw["images_seen"]),
                    "wall_s": _number(raw["wall_s"]),
                    **{m: _number(raw[m]) for m in ACCURACIES},
                    "extra": {k: _number(v) if _number(v) is not None else v for k, v in raw.items() if k not in FIXED_COLUMNS},
                }
            )
    return rows


def read_curve(path: str) -> List[dict]:
    """The curve CSV's rows: cell, seed, iteration and the accuracies (None where not evaluated)."""
    with open(path, newline="") as f:
        return [
            {"cell": r["cell"], "seed": int(r["seed"]), "iteration": int(r["iteration"]), **{m: _number(r[m]) for m in ACCURACIES}}
            for r in csv.DictReader(f)
        ]


def _number(text: str) -> Optional[float]:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ------------------------------------------------------------------------------------ the statistics
def mean_std(values: Sequence[float]) -> dict:
    """{"n", "mean", "std"}: the sample std (n - 1), NaN for one value."""
    return {"n": len(values), "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else float("nan")}


def t_interval(values: Sequence[float], confidence: float = 0.95) -> dict:
    """{"n", "mean", "std", "low", "high"}: the mean's two-sided t interval (NaN bounds for n < 2)."""
    summary = mean_std(values)
    if summary["n"] < 2:
        return {**summary, "low": float("nan"), "high": float("nan")}
    half = stats.t.ppf(0.5 + confidence / 2, summary["n"] - 1) * summary["std"] / math.sqrt(summary["n"])
    return {**summary, "low": summary["mean"] - half, "high": summary["mean"] + half}


def by_cell(rows: List[dict], metric: str) -> Dict[str, Dict[int, float]]:
    """{cell: {seed: value}} of `metric` (rows without a value are left out)."""
    table: Dict[str, Dict[int, float]] = {}
    for row in rows:
        value = row[metric] if metric in row else row["extra"].get(metric)
        if isinstance(value, float):
            table.setdefault(row["cell"], {})[row["seed"]] = value
    return table


def paired_difference(rows: List[dict], metric: str, base: str, other: str) -> Optional[dict]:
    """t interval of `other` - `base` over the seeds both cells have; None with fewer than 2 pairs."""
    cells = by_cell(rows, metric)
    seeds = sorted(set(cells.get(base, {})) & set(cells.get(other, {})))
    if len(seeds) < 2:
        return None
    return {**t_interval([cells[other][s] - cells[base][s] for s in seeds]), "seeds": seeds}


def verdict(interval: Optional[dict]) -> str:
    """ "higher" / "lower" when the 95 % interval excludes 0, otherwise "not resolved"."""
    if interval is None:
        return "not resolved"
    if interval["low"] > 0:
        return "higher"
    if interval["high"] < 0:
        return "lower"
    return "not resolved"


# ------------------------------------------------------------------------------------------- tables
def _fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def provenance(rows: List[dict]) -> str:
    """One line: the commit the rows come from, or the mixed commits / dirty trees they come from."""
    commits = sorted({r["commit"] for r in rows})
    dirty = sum(r["dirty"] for r in rows)
    if len(commits) == 1 and not dirty:
        return f"All {len(rows)} runs at commit `{commits[0][:12]}` (clean tree)."
    parts = ", ".join(f"`{c[:12]}` ({sum(r['commit'] == c for r in rows)} runs)" for c in commits)
    return (
        f"**Mixed provenance**: the {len(rows)} runs come from {len(commits)} commit(s): {parts}"
        + (f"; {dirty} from a tree with uncommitted changes" if dirty else "")
        + "."
    )


def markdown_table(
    rows: List[dict],
    cells: Sequence[str],
    labels: Sequence[str],
    monitors: Sequence[str],
    comparisons: Sequence[Sequence[str]],
    csv_path: str,
) -> str:
    """The grid's tables: per cell n, mean ± sample std of the accuracies and monitors; then per
    comparison the paired difference by seed with its 95 % t interval and verdict."""
    metrics = [m for m in [*ACCURACIES, *monitors] if by_cell(rows, m)]
    header = ["cell", *labels, "n", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    label_of = {r["cell"]: r["extra"] for r in rows}
    for cell in cells:
        if cell not in label_of:
            continue
        entries = [cell, *[_label(label_of[cell].get(k, "")) for k in labels]]
        seeds = {r["seed"] for r in rows if r["cell"] == cell}
        entries.append(str(len(seeds)))
        for metric in metrics:
            values = list(by_cell(rows, metric).get(cell, {}).values())
            stat = mean_std(values) if values else None
            digits = 1 if metric in ACCURACIES else 2
            entries.append(
                "-" if stat is None else _fmt(stat["mean"], digits) + ("" if math.isnan(stat["std"]) else f" ± {_fmt(stat['std'], digits)}")
            )
        lines.append("| " + " | ".join(entries) + " |")
    text = "\n".join(lines) + ("\n\nmean ± sample std over seeds (n = seeds); accuracies in % on Shapes val; monitors as logged.")
    if comparisons:
        lines = ["| comparison (paired by seed) | metric | n | difference | 95 % CI | verdict |", "|---|---|---|---|---|---|"]
        for base, other in comparisons:
            for metric in ACCURACIES:
                d = paired_difference(rows, metric, base, other)
                if d is None:
                    continue
                lines.append(
                    f"| {other} − {base} | {metric} | {d['n']} | {_fmt(d['mean'])} ± {_fmt(d['std'])} | "
                    f"[{_fmt(d['low'])}, {_fmt(d['high'])}] | {verdict(d)} |"
                )
        text += (
            "\n\n" + "\n".join(lines) + "\n\ndifference: mean ± sample std of the per-seed differences; "
            '95 % CI: t interval of their mean (n − 1 degrees of freedom); verdict "higher"/"lower" '
            "only when the CI excludes 0."
        )
    return text + f"\n\n{provenance(rows)} Data: `{csv_path}`."


def _label(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------------------------------ figures
def plot_grid(rows: List[dict], cells: Sequence[str], plot: dict, title: str, path: str) -> None:
    """Per metric: each seed's value (dots) over the cell's mean ± 95 % CI (bar), cells along x
    (grouped by plot["series"] when given), the random-init mean as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in plot.get("metrics", ACCURACIES) if by_cell(rows, m)]
    shown = [c for c in cells if c != RANDOM_INIT and any(r["cell"] == c for r in rows)]
    series_key = plot.get("series")
    label_of = {r["cell"]: r["extra"] for r in rows}
    series = list(dict.fromkeys(_label(label_of[c].get(series_key, "")) for c in shown)) if series_key else [""]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(max(4.5, 0.8 * len(shown) + 2) * len(metrics) / 1.3, 4), squeeze=False)
    n_max = max((len(v) for m in metrics for v in by_cell(rows, m).values()), default=0)
    for ax, metric in zip(axes[0], metrics):
        values = by_cell(rows, metric)
        for x, cell in enumerate(shown):
            seeds = values.get(cell, {})
            if not seeds:
                continue
            s = _label(label_of[cell].get(series_key, "")) if series_key else ""
            colour = colours[series.index(s) % len(colours)]
            ci = t_interval(list(seeds.values()))
            err = 0 if math.isnan(ci["low"]) else ci["mean"] - ci["low"]
            ax.errorbar(
                [x],
                [ci["mean"]],
                yerr=[err],
                fmt="s",
                color=colour,
                capsize=5,
                markersize=7,
                label=s if s and s not in ax.get_legend_handles_labels()[1] else None,
            )
            ax.scatter([x + 0.12] * len(seeds), list(seeds.values()), color=colour, s=14, alpha=0.6, zorder=3)
        if RANDOM_INIT in values:
            ax.axhline(statistics.fmean(values[RANDOM_INIT].values()), color="grey", ls="--", label="random init")
        ax.set_xticks(range(len(shown)))
        ax.set_xticklabels(shown, rotation=30, ha="right")
        ax.set_xlabel("cell")
        ax.set_ylabel(f"{metric} (%)" if metric in ACCURACIES else metric)
        ax.grid(alpha=0.3)
        ax.legend(title=series_key or "reference", fontsize=8)
    fig.suptitle(f"{title}: mean ± 95 % CI (squares), each seed (dots); n ≤ {n_max} seeds a cell")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_series(
    curve_rows: List[dict], cell: str, metric: str, images_per_step: Optional[int] = None
) -> Tuple[List[float], List[float], List[float], List[float]]:
    """One cell's curve: (x, mean, min, max over seeds) at each evaluated iteration; x is the
    iteration, or thousands of images seen when `images_per_step` is given."""
    points: Dict[int, List[float]] = {}
    for r in curve_rows:
        if r["cell"] == cell and r.get(metric) is not None:
            points.setdefault(r["iteration"], []).append(r[metric])
    its = sorted(points)
    xs = [i * images_per_step / 1000 if images_per_step else float(i) for i in its]
    return xs, [statistics.fmean(points[i]) for i in its], [min(points[i]) for i in its], [max(points[i]) for i in its]


def cell_colors(cells: Sequence[str]) -> Dict[str, tuple]:
    """A distinct RGBA colour per cell: tab10 up to 10 cells, tab20 up to 20, then evenly spaced
    along a continuous colour map."""
    from matplotlib import colormaps

    if len(cells) <= 20:
        palette = colormaps["tab10" if len(cells) <= 10 else "tab20"]
        return {cell: palette(i) for i, cell in enumerate(cells)}
    palette = colormaps["turbo"]
    return {cell: palette(i / (len(cells) - 1)) for i, cell in enumerate(cells)}


def plot_curves(
    curve_rows: List[dict], cells: Sequence[str], title: str, path: str, images_per_step: Optional[Dict[str, int]] = None
) -> None:
    """Accuracy against training iterations, or against images seen when `images_per_step`
    ({cell: images a step}) is given, one line per cell (mean over seeds, band = min..max of the
    seeds), the random-init mean as a dashed line. `curve_rows`: dicts with cell, seed, iteration
    and the accuracies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ACCURACIES), figsize=(11, 4), squeeze=False)
    seeds = {r["seed"] for r in curve_rows}
    colors = cell_colors([cell for cell in cells if cell != RANDOM_INIT])
    for ax, metric in zip(axes[0], ACCURACIES):
        for cell in cells:
            xs, mean, low, high = curve_series(curve_rows, cell, metric, images_per_step.get(cell) if images_per_step else None)
            if not xs:
                continue
            if cell == RANDOM_INIT:
                ax.axhline(mean[-1], color="grey", ls="--", label="random init")
                continue
            ax.plot(xs, mean, marker="o", markersize=3, color=colors[cell], label=cell)
            ax.fill_between(xs, low, high, color=colors[cell], alpha=0.2)
        ax.set_xlabel("images seen (thousands)" if images_per_step else "training iteration")
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, title="cell", fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"{title}: mean over {len(seeds)} seeds (band: min..max)")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
