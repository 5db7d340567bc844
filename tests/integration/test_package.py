"""`pip install .` (a wheel, not editable) works outside the checkout: configs, catalog and projects ship."""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import pytest

from conftest import REPO_ROOT

SOURCES = ["setup.py", "ssl_lab", "projects", "configs", "model_zoo", "tools"]


@pytest.mark.slow
def test_wheel_installs_and_trains_a_shapes_project_config_outside_the_checkout(tmp_path):
    """Build the wheel from a copy of the sources, install it into a fresh venv, and train one iteration of
    SiMo's Shapes config from another directory: the config is found through the installed package, its
    IMPORTS (projects/EqCo/eqco, projects/SiMo/simo) resolve to the installed project packages.

    The venv reuses this interpreter's third-party packages through a .pth line instead of installing
    torch again (5.5 GB): only site directories process .pth files, so this interpreter's own ssl_lab
    (an editable install or PYTHONPATH) stays invisible, which the test checks.
    """
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if os.path.isdir(os.path.join(REPO_ROOT, name)) else shutil.copyfile
        kwargs = {"ignore": shutil.ignore_patterns("__pycache__", "*.pyc")} if copy is shutil.copytree else {}
        copy(os.path.join(REPO_ROOT, name), source / name, **kwargs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    wheel = glob.glob(str(tmp_path / "dist" / "ssl_lab-*.whl"))[0]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = str(env_dir / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with open(os.path.join(site, "_shared_site_packages.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], check=True, env=env, timeout=300)

    work = tmp_path / "elsewhere"
    work.mkdir()
    check = subprocess.run(
        [
            python,
            "-c",
            (
                "import ssl_lab, simo, os; from ssl_lab.model_zoo import get_config_file, load_catalog; "
                "name = sorted(load_catalog())[0]; print(ssl_lab.__file__); print(simo.__file__); "
                "print(os.path.isfile(get_config_file(name)))"
            ),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    package_file, project_file, zoo_config_found = check.stdout.split()
    assert package_file.startswith(site) and project_file.startswith(site)  # not the checkout's
    assert zoo_config_found == "True"

    run = subprocess.run(
        [
            str(env_dir / "bin" / "train_net.py"),
            "--config-file",
            "projects/SiMo/configs/shapes_r18.yaml",
            "OUTPUT_DIR",
            "out",
            "DATASETS.ROOT",
            "datasets",
            "DATASETS.SHAPES.NUM_TRAIN",
            "32",
            "DATASETS.SHAPES.NUM_VAL",
            "16",
            "DATASETS.SHAPES.IMAGE_SIZE",
            "32",
            "INPUT.CROP_SIZE",
            "32",
            "INPUT.TEST_RESIZE",
            "32",
            "MODEL.PROJECTOR.HIDDEN_DIM",
            "32",
            "MODEL.PROJECTOR.OUT_DIM",
            "16",
            "SOLVER.IMS_PER_BATCH",
            "16",
            "MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES",
            "8",
            "SOLVER.MAX_ITER",
            "1",
            "DATALOADER.NUM_WORKERS",
            "0",
            "TEST.EVAL_PERIOD",
            "0",
            "TEST.EVAL_AT_START",
            "False",
            "MODEL.DEVICE",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert os.path.isfile(work / "out" / "model_final.pth")
