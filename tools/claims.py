"""The papers' claims table, computed from the grids' committed CSVs.

    python tools/claims.py                   # print the table
    python tools/claims.py --update-readme   # put it between <!-- sweep:claims --> markers of README.md

`tools/claims.yaml` lists each claim: the paper's statement and where it is made, the grid spec
whose CSV measures it, the pair of cells compared (paired by seed: second - first) and what the
paper expects of that difference: `higher` (> 0), `lower` (< 0) or `equal` (within +-`margin`
points). A claim without a grid is listed as not measured. The verdict follows the 95 % t interval
of the paired difference (`verdict_of`); both cells must also beat random init in that grid.
"""

import argparse
import os
import sys
from typing import List, Optional

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from ssl_lab.utils.errors import UserError, exit_on_user_error  # noqa: E402

import sweep  # noqa: E402
import sweep_results  # noqa: E402

CLAIMS_FILE = os.path.join(REPO_ROOT, "tools", "claims.yaml")
METRICS = {"knn_top1": "kNN", "linear_top1": "linear"}

RULE = (
    "Verdict rule, per metric, from the 95 % t interval (CI) of the paired difference over seeds: "
    "for a claim that one cell is higher (lower), **reproduced** when the CI excludes 0 in the paper's "
    "direction, **contradicted** when it excludes 0 the other way; for a claim that two cells are equal, "
    "**reproduced** when the CI lies within the stated margin, **contradicted** when it lies wholly "
    "beyond it (a difference larger than the margin); otherwise **not resolved at this n**. A comparison counts only when both of its "
    "cells beat random init (CI of cell - random_init above 0) on that metric; if not, the verdict is "
    "**no comparison**. A CI half-width is the smallest effect the grid resolves at its n and spread."
)


def verdict_of(interval: Optional[dict], expect: str, margin: float = 0.0) -> str:
    """ "reproduced" / "contradicted" / "not resolved at this n" for `expect` in {higher, lower, equal}."""
    if interval is None:
        return "not resolved at this n"
    low, high = interval["low"], interval["high"]
    if expect == "equal":
        if -margin <= low and high <= margin:
            return "reproduced"
        return "contradicted" if low > margin or high < -margin else "not resolved at this n"
    sign = 1.0 if expect == "higher" else -1.0
    if sign * low > 0 and sign * high > 0:
        return "reproduced"
    if low > 0 or high < 0:
        return "contradicted"
    return "not resolved at this n"


def load_claims(path: str = CLAIMS_FILE) -> List[dict]:
    with open(path) as f:
        claims = yaml.safe_load(f)
    for claim in claims:
        if claim.get("grid") and claim.get("expect") not in ("higher", "lower", "equal"):
            raise UserError(f"{path}: claim '{claim['claim']}' needs expect: higher, lower or equal")
    return claims


def _beats_random_init(rows: List[dict], metric: str, cell: str) -> bool:
    interval = sweep_results.paired_difference(rows, metric, sweep_results.RANDOM_INIT, cell)
    return interval is not None and interval["low"] > 0


def judge(rows: List[dict], metric: str, base: str, other: str, expect: str, margin: float = 0.0) -> tuple:
    """(interval of other - base paired by seed or None, verdict); "no comparison" unless both cells
    beat random_init on `metric`."""
    interval = sweep_results.paired_difference(rows, metric, base, other)
    if not all(_beats_random_init(rows, metric, cell) for cell in (base, other)):
        return interval, "no comparison"
    return interval, verdict_of(interval, expect, margin)


def _measured_row(claim: dict) -> tuple:
    spec = sweep.load_spec(os.path.join(REPO_ROOT, claim["grid"]))
    if not os.path.isfile(spec["results"]):
        return None, f"grid `{claim['grid']}` not run yet"
    rows = sweep_results.read_rows(spec["results"])
    base, other = claim["compare"]
    not_run = [cell for cell in (base, other) if not any(r["cell"] == cell for r in rows)]
    if not_run:
        return None, f"cell {', '.join(f'`{c}`' for c in not_run)} of `{claim['grid']}` not run yet"
    effects, verdicts, n = [], [], 0
    for metric, name in METRICS.items():
        interval, verdict = judge(rows, metric, base, other, claim["expect"], claim.get("margin", 0.0))
        verdicts.append(f"{name}: **{verdict}**")
        if interval is None:
            effects.append(f"{name} -")
            continue
        n = interval["n"]
        half = (interval["high"] - interval["low"]) / 2
        effects.append(f"{name} {interval['mean']:+.1f} [{interval['low']:.1f}, {interval['high']:.1f}] (±{half:.1f})")
    commits = sorted({r["commit"][:12] for r in rows if r["cell"] in (base, other)})
    expect = claim["expect"] + (f" (±{claim['margin']:g})" if claim["expect"] == "equal" else "")
    comparison = f"`{other}` − `{base}`, expect {expect}"
    return (n, comparison, "<br>".join(effects), "<br>".join(verdicts), f"`{claim['grid']}` @ {', '.join(commits)}"), None


def claims_table(claims: List[dict]) -> str:
    """The README block: the rule, one row per measured claim, then the claims not measured."""
    measured = [
        "| claim (paper) | comparison | n | difference, points [95 % CI] (CI half-width) | verdict | grid @ commit |",
        "|---|---|---|---|---|---|",
    ]
    unmeasured = ["| claim (paper) | status |", "|---|---|"]
    for claim in claims:
        statement = f"{claim['claim']} ({claim['source']})"
        row, missing = _measured_row(claim) if claim.get("grid") else (None, claim["status"])
        if row is None:
            unmeasured.append(f"| {statement} | {missing} |")
        else:
            n, comparison, effects, verdicts, where = row
            measured.append(f"| {statement} | {comparison} | {n} | {effects} | {verdicts} | {where} |")
    text = RULE + "\n\n" + "\n".join(measured)
    if len(unmeasured) > 2:
        text += "\n\nNot measured on the testbed yet:\n\n" + "\n".join(unmeasured)
    return text


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    text = claims_table(load_claims())
    if args.update_readme:
        sweep.update_readme(os.path.join(REPO_ROOT, "README.md"), "claims", text)
    print(text)


if __name__ == "__main__":
    with exit_on_user_error():
        main()
