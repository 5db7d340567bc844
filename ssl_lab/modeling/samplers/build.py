from fvcore.common.registry import Registry

NEGATIVE_SAMPLER_REGISTRY = Registry("NEGATIVE_SAMPLER")
NEGATIVE_SAMPLER_REGISTRY.__doc__ = """
Registry for negative samplers: they pick which negatives each query sees,
(N, M) similarities -> (N, K). Registered classes have `from_config(cls, cfg)`.
"""


def build_negative_sampler(cfg, num_candidates: int = None, candidates: str = "candidates"):
    """The sampler named by `cfg.MODEL.NEGATIVE_SAMPLER.NAME`.

    With `num_candidates` (the negatives a query can see, described by `candidates`), a
    RandomNegatives that draws more is refused here, at build time, rather than at the first step.
    """
    node = cfg.MODEL.NEGATIVE_SAMPLER
    if num_candidates is not None and node.NAME == "RandomNegatives" and node.NUM_NEGATIVES > num_candidates:
        raise ValueError(
            f"MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = {node.NUM_NEGATIVES} is more than the {num_candidates} "
            f"{candidates}; the largest valid value is {num_candidates}"
        )
    return NEGATIVE_SAMPLER_REGISTRY.get(node.NAME).from_config(cfg)
