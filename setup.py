from setuptools import find_packages, setup

setup(
    name="ssl_lab",
    version="0.1.0",
    description="Self-supervised visual pretraining in the detectron2 style: EqCo, SiMo, MSBReg and baselines",
    packages=find_packages(include=["ssl_lab", "ssl_lab.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch",
        "torchvision",
        "fvcore",
        "iopath",
        "yacs",
        "pycocotools",
        "tensorboard",
        "matplotlib",
        "tqdm",
        "numpy",
        "pillow",
    ],
    extras_require={"test": ["pytest", "hypothesis"]},
)
