"""Results as data: every README grid table is what its committed CSV gives, the statistics are the
textbook ones (checked against a t table and hand-computed cases), and rows are traced to a commit."""

import glob
import os
import re
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import sweep  # noqa: E402
import sweep_results  # noqa: E402

SPECS = sorted(
    glob.glob(os.path.join(REPO_ROOT, "projects", "*", "sweeps", "*.yaml"))
    + glob.glob(os.path.join(REPO_ROOT, "tools", "sweeps", "*.yaml"))
)


def _spec(path):
    spec = sweep.load_spec(path)
    spec["path"] = os.path.relpath(path, REPO_ROOT)
    return spec


def _readme_block(readme: str, name: str) -> str:
    with open(os.path.join(REPO_ROOT, readme)) as f:
        text = f.read()
    match = re.search(rf"<!-- sweep:{re.escape(name)} -->\n(.*?)\n<!-- /sweep:{re.escape(name)} -->", text, re.S)
    assert match, f"{readme} has no sweep:{name} markers"
    return match.group(1)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: os.path.relpath(p, REPO_ROOT))
def test_readme_table_is_what_the_csv_gives(path):
    spec = _spec(path)
    assert spec.get("readme"), f"{spec['path']} names no readme"
    block = _readme_block(spec["readme"], spec["name"])
    if os.path.isfile(spec["results"]):
        assert block == sweep.readme_block(spec), (
            f"{spec['readme']} differs from {spec['results']}: run `python tools/sweep.py {spec['path']} --update-readme`"
        )
        for figure in re.findall(r"\]\((results/[^)]+\.png)\)", block):
            assert os.path.isfile(os.path.join(REPO_ROOT, os.path.dirname(spec["readme"]), figure))
    else:
        assert block.startswith("*Not run yet.*"), block[:200]


def test_testbed_csv_has_the_fixed_columns_and_one_clean_commit():
    spec = _spec(os.path.join(REPO_ROOT, "tools", "sweeps", "testbed.yaml"))
    rows = sweep_results.read_rows(spec["results"])  # raises unless the fixed columns come first
    assert {(r["cell"], r["seed"]) for r in rows} == {(c["name"], s) for c in spec["cells"] for s in spec["seeds"]}
    assert len({r["commit"] for r in rows}) == 1 and not any(r["dirty"] for r in rows)
    assert all(re.fullmatch(r"[0-9a-f]{40}", r["commit"]) for r in rows)
    for r in rows:
        assert r["images_seen"] == r["iterations"] * 256
        assert (r["iterations"] == 0) == (r["cell"] == "random_init")


def test_t_interval_matches_a_t_table():
    # n = 4: t_{0.975, 3} = 3.182 (any t table); mean 2.5, s = sqrt(5/3)
    ci = sweep_results.t_interval([1.0, 2.0, 3.0, 4.0])
    half = 3.182446305284263 * (5 / 3) ** 0.5 / 2
    assert ci["n"] == 4 and ci["mean"] == 2.5
    assert abs(ci["low"] - (2.5 - half)) < 1e-9 and abs(ci["high"] - (2.5 + half)) < 1e-9
    # n = 3: t_{0.975, 2} = 4.303
    ci = sweep_results.t_interval([0.0, 3.0, 6.0])
    assert abs(ci["high"] - (3 + 4.302652729911275 * 3 / 3**0.5)) < 1e-9


def _row(cell, seed, knn, commit="a" * 40, dirty=False):
    return {
        "grid": "g",
        "cell": cell,
        "seed": seed,
        "commit": commit,
        "dirty": dirty,
        "iterations": 0,
        "images_seen": 0,
        "wall_s": 1.0,
        "knn_top1": knn,
        "linear_top1": None,
        "extra": {},
    }


def test_paired_difference_pairs_by_seed_and_verdict_follows_the_interval():
    rows = [
        _row("a", 0, 50.0),
        _row("a", 1, 60.0),
        _row("a", 2, 40.0),
        _row("a", 3, 99.0),
        _row("b", 0, 52.0),
        _row("b", 1, 62.5),
        _row("b", 2, 41.5),
    ]  # seed 3 has no pair
    d = sweep_results.paired_difference(rows, "knn_top1", "a", "b")  # differences 2, 2.5, 1.5
    assert d["seeds"] == [0, 1, 2] and d["mean"] == 2.0 and d["std"] == 0.5
    assert abs(d["low"] - (2 - 4.302652729911275 * 0.5 / 3**0.5)) < 1e-9  # 0.758: excludes 0
    assert sweep_results.verdict(d) == "higher"
    rows[5]["knn_top1"] = 58.0  # differences 2, -2, 1.5: the interval holds 0
    assert sweep_results.verdict(sweep_results.paired_difference(rows, "knn_top1", "a", "b")) == "not resolved"


def test_a_table_from_mixed_commits_says_so():
    rows = [_row("a", 0, 1.0), _row("a", 1, 2.0, commit="b" * 40), _row("a", 2, 3.0, dirty=True)]
    table = sweep_results.markdown_table(rows, ["a"], [], [], [], "x.csv")
    assert "**Mixed provenance**" in table and "1 from a tree with uncommitted changes" in table
    clean = sweep_results.markdown_table(rows[:1], ["a"], [], [], [], "x.csv")
    assert f"at commit `{'a' * 12}` (clean tree)" in clean


def test_rows_from_a_dirty_tree_or_another_commit_are_refused(tmp_path):
    spec = {"name": "g", "results": str(tmp_path / "g.csv")}
    with pytest.raises(SystemExit, match="uncommitted changes"):
        sweep.check_provenance(spec, {"commit": "a" * 40, "dirty": True}, allow_mixed=False)
    sweep_results.write_rows(spec["results"], [{**_row("a", 0, 1.0), "labels": {}, "values": {}}], [], [])
    with pytest.raises(SystemExit, match="holds rows of commit"):
        sweep.check_provenance(spec, {"commit": "b" * 40, "dirty": False}, allow_mixed=False)
    sweep.check_provenance(spec, {"commit": "a" * 40, "dirty": False}, allow_mixed=False)
    sweep.check_provenance(spec, {"commit": "b" * 40, "dirty": True}, allow_mixed=True)


def test_csv_round_trip_keeps_the_fixed_columns_first(tmp_path):
    path = str(tmp_path / "g.csv")
    row = {**_row("a", 1, 55.25), "linear_top1": 60.5, "labels": {"K": 16}, "values": {"mi": 1.5}}
    row.pop("extra")
    sweep_results.write_rows(path, [row], ["K"], ["mi"])
    with open(path) as f:
        assert f.readline().strip() == ",".join(sweep_results.FIXED_COLUMNS + ["K", "mi"])
    back = sweep_results.read_rows(path)[0]
    assert (back["knn_top1"], back["linear_top1"], back["extra"]) == (55.25, 60.5, {"K": 16.0, "mi": 1.5})


@pytest.mark.parametrize("n", [3, 11, 25])
def test_every_curve_gets_its_own_colour(n):
    # matplotlib's default cycle (tab10) repeats after 10 lines: an 11-cell grid drew two cells in one colour
    cells = [f"c{i}" for i in range(n)]
    colors = sweep_results.cell_colors(cells)
    assert set(colors) == set(cells) and len(set(colors.values())) == n
