"""The device a config names."""

import torch


def resolve_device(name: str) -> torch.device:
    """MODEL.DEVICE -> torch.device; "auto" is cuda if available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
