"""run_provenance: the commit and the uncommitted changes of a checkout, read against git's own files."""

import os
import subprocess

import torch

from ssl_lab.utils.provenance import run_provenance


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True)


def test_commit_and_uncommitted_changes_of_a_checkout(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "tracked.txt").write_text("one\n")
    _git(repo, "add", "tracked.txt")
    _git(repo, "commit", "-q", "-m", "first")
    head = (repo / ".git" / "refs" / "heads" / "main").read_text().strip()  # the branch file git wrote

    clean = run_provenance(str(repo))
    assert (clean["commit"], clean["dirty"], clean["torch"]) == (head, False, torch.__version__)
    assert clean["machine"].endswith(f"{os.cpu_count()} CPU cores") or torch.cuda.is_available()
    (repo / "untracked.txt").write_text("not part of the code\n")
    assert run_provenance(str(repo))["dirty"] is False  # untracked files are not the code that ran
    (repo / "tracked.txt").write_text("two\n")
    assert run_provenance(str(repo))["dirty"] is True


def test_outside_a_checkout_the_commit_is_unknown(tmp_path):
    outside = run_provenance(str(tmp_path))
    assert (outside["commit"], outside["dirty"]) == ("unknown", None)
