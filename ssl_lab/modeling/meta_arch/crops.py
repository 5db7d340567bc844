"""How a method pairs the crops of one image: which crops are targets (keys), which are queries.

Views arrive as [global 1, ..., global G, local 1, ..., local L] (INPUT.NUM_VIEWS global views,
then INPUT.MULTI_CROP.NUM_LOCAL local crops). Methods whose CROP_PAIRING is "global-local" compute
targets/keys on global crops only and use every other crop, local ones included, as a query against
each of them: the pairing of SwAV (`crops_for_assign` against `np.delete(np.arange(sum(nmb_crops)),
crop_id)`), DINO (teacher on the 2 global crops, student on all crops, `v == iq` skipped) and
solo-learn (`for v1 in range(num_large_crops): for v2 in np.delete(range(num_crops), v1)`).
Methods whose CROP_PAIRING is "global-global" (the default) pair the global views only and refuse
local crops.
"""

from typing import List, Sequence, Tuple

__all__ = ["crop_pairs"]


def crop_pairs(targets: Sequence[int], num_crops: int) -> List[Tuple[int, int]]:
    """(target crop, query crop) for each crop index in `targets` (global crops) and every crop
    of the `num_crops` other than that target, in target-major order."""
    return [(t, q) for t in targets for q in range(num_crops) if q != t]
