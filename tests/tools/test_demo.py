"""`make demo`'s script end to end at toy size (pretraining, kNN and linear evaluation)."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_demo_reports_knn_and_linear_accuracy_and_resumes(shapes_root, tmp_path):
    out = str(tmp_path / "demo")
    cmd = [
        sys.executable,
        os.path.join(REPO_ROOT, "tools", "demo.py"),
        "--output-dir",
        out,
        "--skip-detection",
        "DATASETS.ROOT",
        shapes_root,
        "DATASETS.SHAPES.NUM_TRAIN",
        "64",
        "DATASETS.SHAPES.NUM_VAL",
        "32",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "16",
        "TEST.EVAL_PERIOD",
        "0",
        "MODEL.PROJECTOR.HIDDEN_DIM",
        "64",
        "DATALOADER.NUM_WORKERS",
        "0",
        "TEST.IMS_PER_BATCH",
        "32",
    ]
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "kNN top-1 (%)" in first.stdout and "linear top-1 (%)" in first.stdout
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for key in ("knn_random_init", "knn_pretrained", "linear_random_init", "linear_pretrained"):
        correct = results[key] * 32 / 100  # accuracies over the 32 val images
        assert correct == pytest.approx(round(correct)), (key, results[key])
    with open(os.path.join(out, "pretrain", "metrics.json")) as f:
        knn = [(r["iteration"], r["knn/top1"]) for r in map(json.loads, f) if "knn/top1" in r]
    assert (results["knn_random_init"], results["knn_pretrained"]) == (knn[0][1], knn[-1][1]) and knn[0][0] == 0
    assert os.path.getsize(os.path.join(out, "pretrain_metrics.png")) > 10_000
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "Nothing to do" in again.stdout + again.stderr
    head = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert results["provenance"]["commit"] == (head or "unknown")
    # Unfinished results of other code are not finished by this code; the refused run changes nothing.
    del results["linear_pretrained"]
    results["provenance"]["commit"] = "0" * 40
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f)
    before = open(os.path.join(out, "results.json")).read()
    refused = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2 and f"commit {'0' * 40}" in refused.stderr, refused.stderr[-3000:]
    assert open(os.path.join(out, "results.json")).read() == before


def _demo_module():
    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    try:
        import demo
    finally:
        sys.path.remove(os.path.join(REPO_ROOT, "tools"))
    return demo


PROVENANCE = {
    "commit": "0123456789abcdef0123456789abcdef01234567",
    "dirty": True,
    "torch": "2.14.1",
    "machine": "AMD EPYC, 2 CPU cores",
    "date": "2026-12-05",
}
FULL_RESULTS = {
    "knn_random_init": 39.5,
    "knn_pretrained": 45.7,
    "linear_random_init": 27.5,
    "linear_pretrained": 43.5,
    "box_ap_random_init": 0.8125,
    "box_ap_pretrained": 1.61,
    "provenance": PROVENANCE,
}


def test_update_readme_writes_the_printed_table_between_the_markers(tmp_path):
    demo = _demo_module()
    start, end = demo.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\n```\nold\n```\n{end}\noutro\n")
    demo.update_readme(str(readme), FULL_RESULTS)
    assert readme.read_text() == (
        f"intro\n{start}\n```\n"
        "Shapes val" + " " * 13 + "random init" + " " * 3 + "SiMo pretrained\n"
        "kNN top-1 (%)" + " " * 16 + "39.50" + " " * 13 + "45.70\n"
        "linear top-1 (%)" + " " * 13 + "27.50" + " " * 13 + "43.50\n"
        "box AP (200 val)" + " " * 14 + "0.81" + " " * 14 + "1.61\n"
        "```\n"
        "Source: commit 0123456789abcdef0123456789abcdef01234567 with uncommitted changes, torch 2.14.1, "
        "AMD EPYC, 2 CPU cores, 2026-12-05; "
        "regenerate: make demo, then .venv/bin/python tools/demo.py --update-readme\n"
        f"{end}\noutro\n"
    )
    before = readme.read_text()
    for lacking in ("box_ap", "provenance"):
        partial = {k: v for k, v in FULL_RESULTS.items() if not k.startswith(lacking)}
        with pytest.raises(demo.UserError, match=f"'{lacking}"):
            demo.update_readme(str(readme), partial)
        assert readme.read_text() == before  # a refused update changes nothing


def test_results_of_other_code_are_not_finished():
    """A results.json started by another commit (or with other uncommitted changes, or without a recorded
    provenance) is only reported, never added to; a finished one is reported from any code."""
    demo = _demo_module()
    started = {"knn_random_init": 39.5, "knn_pretrained": 45.7, "provenance": PROVENANCE}
    other_commit = {**PROVENANCE, "commit": "f" * 40}
    clean = {**PROVENANCE, "dirty": False}
    for current in (other_commit, clean):
        with pytest.raises(demo.UserError, match=f"commit {PROVENANCE['commit']} .*this is commit {current['commit']}"):
            demo.check_same_code(started, current, "results.json", steps_left=True)
        demo.check_same_code(started, current, "results.json", steps_left=False)
    with pytest.raises(demo.UserError, match="commit unrecorded"):
        demo.check_same_code({"knn_random_init": 39.5}, PROVENANCE, "results.json", steps_left=True)
    demo.check_same_code(started, dict(PROVENANCE), "results.json", steps_left=True)
    demo.check_same_code({}, PROVENANCE, "results.json", steps_left=True)


# provenance_line's layout, read back: commit, uncommitted changes, torch, machine, date.
SOURCE_LINE = re.compile(
    r"Source: commit (?P<commit>[0-9a-f]{40})(?P<dirty> with uncommitted changes)?, "
    r"torch (?P<torch>[^,]+), (?P<machine>.+), (?P<date>\d{4}-\d\d-\d\d); regenerate: .*"
)


def _is_commit(commit: str) -> bool:
    """Whether the checkout holds `commit` (None when there is no full git history to ask)."""
    shallow = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--is-shallow-repository"], capture_output=True, text=True)
    if shallow.returncode != 0 or shallow.stdout.strip() != "false":
        return None
    return subprocess.run(["git", "-C", REPO_ROOT, "cat-file", "-e", f"{commit}^{{commit}}"]).returncode == 0


def test_readme_demo_table_is_what_the_demo_prints():
    """With output/demo/results.json (after `make demo`): the README's table and source line are what
    --update-readme writes from it. Without: the README's table and source line have the demo's exact
    layout (their values read back give the same text), the source names a commit of this repository,
    and only a note on how it was recorded follows it."""
    demo = _demo_module()
    with open(os.path.join(REPO_ROOT, "README.md")) as f:
        text = f.read()
    start, end = demo.README_MARKERS
    block = text[text.index(start) + len(start) : text.index(end)].strip("\n")
    assert block.startswith("```\n") and block.count("```") == 2
    table, after = block[4:].split("\n```\n")
    source, *note = after.split("\n")
    results_file = os.path.join(REPO_ROOT, "output", "demo", "results.json")
    if os.path.isfile(results_file):
        with open(results_file) as f:
            results = json.load(f)
        assert (table, after) == (demo.results_table(results), demo.provenance_line(results["provenance"]))
        return
    match = SOURCE_LINE.fullmatch(source)
    assert match, source
    provenance = {**match.groupdict(), "dirty": bool(match["dirty"])}
    assert demo.provenance_line(provenance) == source
    assert _is_commit(provenance["commit"]) in (True, None), provenance["commit"]
    assert not note or note[0].startswith("Recorded by hand"), note
    labels = {label: key for label, key in demo.TABLE_ROWS}
    parsed = {}
    for line in table.splitlines()[1:]:
        label, random_init, pretrained = line[:20].strip(), *line[20:].split()
        parsed[f"{labels[label]}_random_init"] = float(random_init)
        parsed[f"{labels[label]}_pretrained"] = float(pretrained)
    assert len(parsed) >= 4 and table == demo.results_table(parsed)


def test_detection_val_subset_is_the_first_val_images_with_their_boxes(tmp_path):
    """The demo's detection evaluation set: the first N images of shapes_val, with the ground truth
    COCOEvaluator scores against (checked against the split's own annotations.json)."""
    if os.environ.get("CI", "").lower() != "true":
        pytest.importorskip("detectron2", reason="detectron2 not installed (make d2)")
    project = os.path.join(REPO_ROOT, "projects", "Detectron2Transfer")
    sys.path.insert(0, project)
    try:
        from shapes_transfer import shapes_cfg

        from d2_transfer import Trainer, register_shapes
    finally:
        sys.path.remove(project)
    from detectron2.data import DatasetCatalog

    root = str(tmp_path / "data")
    cfg = shapes_cfg(
        "",
        str(tmp_path / "det"),
        ["DATASETS.SHAPES.ROOT", root, "DATASETS.SHAPES.NUM_TRAIN", 12, "DATASETS.SHAPES.NUM_VAL", 10],
        val_images=4,
    )
    assert cfg.DATASETS.TEST == ("shapes_val_first4",)
    register_shapes(cfg)
    from shapes_transfer import register_val_subset

    register_val_subset(4)
    evaluator = Trainer.build_evaluator(cfg, "shapes_val_first4", str(tmp_path / "eval"))
    with open(os.path.join(root, "shapes", "val", "annotations.json")) as f:
        truth = json.load(f)
    first = sorted(truth["images"], key=lambda im: im["id"])[:4]
    gt = evaluator._coco_api
    assert sorted(os.path.basename(im["file_name"]) for im in gt.dataset["images"]) == sorted(im["file_name"] for im in first)
    expected = sorted(
        (a["category_id"], *[round(v, 3) for v in a["bbox"]]) for a in truth["annotations"] if a["image_id"] in {im["id"] for im in first}
    )
    got = sorted((a["category_id"], *[round(v, 3) for v in a["bbox"]]) for a in gt.dataset["annotations"])
    assert got == expected and len(DatasetCatalog.get("shapes_val_first4")) == 4
