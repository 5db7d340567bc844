"""`pip install .` installs ssl_lab, the project packages (eqco, simo, msbreg, d2_transfer) and a copy of the
configs and the model-zoo catalog inside the package (ssl_lab/_resources), found through
ssl_lab.utils.resources when ssl_lab runs outside a checkout."""

import glob
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

# The project packages, importable by name once installed (IMPORTS entries resolve to them).
PROJECT_PACKAGES = {
    "eqco": "projects/EqCo/eqco",
    "simo": "projects/SiMo/simo",
    "msbreg": "projects/MSBReg/msbreg",
    "d2_transfer": "projects/Detectron2Transfer/d2_transfer",
}
# Shipped files, copied with their paths relative to the checkout (see ssl_lab/utils/resources.py).
RESOURCES = ["configs/**/*.yaml", "projects/*/configs/**/*.yaml", "model_zoo/catalog.yaml"]


class BuildPyWithResources(build_py):
    """build_py that also copies RESOURCES into the built package's `_resources` folder."""

    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        target = os.path.join(self.build_lib, "ssl_lab", "_resources")
        for pattern in RESOURCES:
            for src in glob.glob(os.path.join(here, pattern), recursive=True):
                dst = os.path.join(target, os.path.relpath(src, here))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)


def project_packages():
    packages, package_dir = [], {}
    for name, folder in PROJECT_PACKAGES.items():
        for sub in [""] + find_packages(folder):
            dotted = f"{name}.{sub}" if sub else name
            packages.append(dotted)
            package_dir[dotted] = os.path.join(folder, *sub.split(".")) if sub else folder
    return packages, package_dir


packages, package_dir = project_packages()

setup(
    name="ssl_lab",
    version="0.1.0",
    description="Self-supervised visual pretraining in the detectron2 style: EqCo, SiMo, MSBReg and baselines",
    packages=find_packages(include=["ssl_lab", "ssl_lab.*"]) + packages,
    package_dir=package_dir,
    cmdclass={"build_py": BuildPyWithResources},
    scripts=["tools/train_net.py"],
    python_requires=">=3.9",
    # Lower bounds are what the code needs: torch.amp.GradScaler(device) (torch 2.3) and the
    # torchvision.transforms.v2 functional API of the torchvision released with it (0.18).
    install_requires=[
        "torch>=2.3",
        "torchvision>=0.18",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "yacs>=0.1.8",
        "pycocotools>=2.0.2",
        "tensorboard>=2.9",
        "matplotlib>=3.3",
        "tqdm>=4.29",
        "numpy>=1.21",
        "pillow>=9.1",
        "pyyaml>=5.1",
        "termcolor>=1.1",
        "scipy>=1.7",  # t quantiles of the sweep tables' confidence intervals
        # TimmBackbone uses timm 1.0's API (timm.layers, VisionTransformer.init_weights(mode),
        # num_prefix_tokens); tested with the version in constraints.txt.
        "timm>=1.0",
    ],
    # slurm: tools/submit.py (SLURM jobs that requeue themselves), tested through submitit's local executor;
    # the tested version is pinned in constraints.txt. test: the test suite and `make lint`.
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis", "submitit>=1.5", "ruff", "mypy"], "slurm": ["submitit>=1.5"]},
)
