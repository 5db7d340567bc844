"""The claims table: its verdict rule on hand-made intervals, and README.md's table is what
tools/claims.py computes from the committed CSVs."""

import os
import re
import sys

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import claims  # noqa: E402


def _ci(low, high):
    return {"low": low, "high": high, "mean": (low + high) / 2, "n": 5}


def test_directional_verdicts_follow_the_interval():
    assert claims.verdict_of(_ci(0.1, 3.0), "higher") == "reproduced"
    assert claims.verdict_of(_ci(-3.0, -0.1), "higher") == "contradicted"
    assert claims.verdict_of(_ci(-0.1, 3.0), "higher") == "not resolved at this n"
    assert claims.verdict_of(_ci(-3.0, -0.1), "lower") == "reproduced"
    assert claims.verdict_of(_ci(0.1, 3.0), "lower") == "contradicted"
    assert claims.verdict_of(None, "higher") == "not resolved at this n"


def test_equality_needs_the_whole_interval_inside_the_margin():
    assert claims.verdict_of(_ci(-1.9, 1.9), "equal", margin=2.0) == "reproduced"
    assert claims.verdict_of(_ci(0.5, 1.5), "equal", margin=2.0) == "reproduced"  # real but within the margin
    assert claims.verdict_of(_ci(-2.5, 1.0), "equal", margin=2.0) == "not resolved at this n"
    # excludes 0 but holds differences inside the margin (0.5 to 2): equality is not ruled out
    assert claims.verdict_of(_ci(0.5, 2.5), "equal", margin=2.0) == "not resolved at this n"
    assert claims.verdict_of(_ci(2.1, 4.0), "equal", margin=2.0) == "contradicted"
    assert claims.verdict_of(_ci(-4.0, -2.1), "equal", margin=2.0) == "contradicted"


def test_readme_claims_table_is_what_the_csvs_give():
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"<!-- sweep:claims -->\n(.*?)\n<!-- /sweep:claims -->", text, re.S)
    assert block, "README.md has no sweep:claims markers"
    assert block.group(1) == claims.claims_table(claims.load_claims()), (
        "README.md's claims table differs from the CSVs: run `python tools/claims.py --update-readme`"
    )


def test_every_measured_claim_names_cells_of_its_grid():
    for claim in claims.load_claims():
        if claim.get("grid"):
            spec = claims.sweep.load_spec(os.path.join(REPO_ROOT, claim["grid"]))
            assert set(claim["compare"]) <= {c["name"] for c in spec["cells"]}, claim["claim"]


def _row(cell, seed, knn):
    return {"cell": cell, "seed": seed, "knn_top1": knn, "extra": {}}


def test_a_cell_that_does_not_beat_random_init_is_not_compared():
    rows = (
        [_row("random_init", s, 40.0 + s % 2) for s in range(5)]
        + [_row("a", s, 60.0 + s % 3) for s in range(5)]
        + [_row("b", s, 62.0 + s % 3) for s in range(5)]
    )
    interval, verdict = claims.judge(rows, "knn_top1", "a", "b", "higher")
    assert interval["mean"] == 2.0 and verdict == "reproduced"  # b - a = 2 in every seed: CI [2, 2]
    for s, value in enumerate([30.0, 55.0, 35.0, 50.0, 38.0]):  # b at random-init level: CI of b - random_init holds 0
        rows[10 + s]["knn_top1"] = value
    assert claims.judge(rows, "knn_top1", "a", "b", "lower")[1] == "no comparison"


def test_a_claim_on_a_cell_not_run_yet_is_listed_as_not_measured(tmp_path):
    spec_file = tmp_path / "sweeps" / "g.yaml"
    spec_file.parent.mkdir()
    spec_file.write_text(
        "name: g\noutput_dir: out\nseeds: [0, 1]\ncells:\n  - {name: random_init, config: configs/Shapes/mocov2_r18.yaml}\n"
        "  - {name: a, config: configs/Shapes/mocov2_r18.yaml}\n  - {name: b, config: configs/Shapes/mocov2_r18.yaml}\n"
    )
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "g.csv").write_text(  # random_init and a ran, b did not
        "grid,cell,seed,commit,dirty,iterations,images_seen,wall_s,knn_top1,linear_top1\n"
        + "".join(
            f"g,{cell},{seed},{'c' * 40},false,0,0,1.0,{knn},{knn}\n"
            for cell, knn in (("random_init", 40.0), ("a", 50.0))
            for seed in (0, 1)
        )
    )
    claim = {"claim": "b beats a", "source": "s", "grid": str(spec_file), "compare": ["a", "b"], "expect": "higher"}
    table = claims.claims_table([claim])
    assert f"| b beats a (s) | cell `b` of `{spec_file}` not run yet |" in table
