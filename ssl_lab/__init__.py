"""ssl_lab: self-supervised visual pretraining in the detectron2 style."""

__version__ = "0.1.0"
