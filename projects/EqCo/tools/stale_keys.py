#!/usr/bin/env python
"""How many queries meet an older key of their own image in MoCo's queue, from the training sampler.

The queue holds the keys of the last K training samples (a FIFO filled batch by batch, so the keys
of the K / N batches before the current one); the sampler draws a fresh permutation of the dataset
every epoch. A query "meets its own stale key" when its image is among those K earlier samples.

    python projects/EqCo/tools/stale_keys.py --size 4000 --batch 128 --iters 500 --queue 1024 4096
"""

import argparse
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from ssl_lab.data.samplers import TrainingSampler  # noqa: E402


def stale_fraction(size: int, batch: int, iters: int, queue: int, seed: int = 0) -> float:
    """Fraction of the iters x batch queries whose image has a key in the queue when it is scored."""
    stream = list(itertools.islice(iter(TrainingSampler(size, seed=seed)), iters * batch))
    last_seen, hits = {}, 0
    for step in range(iters):
        start = step * batch
        for image in stream[start : start + batch]:
            hits += image in last_seen and last_seen[image] >= start - queue
        for position in range(start, start + batch):
            last_seen[stream[position]] = position
    return hits / (iters * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4000, help="training images")
    parser.add_argument("--batch", type=int, default=128, help="N, queries per iteration")
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--queue", type=int, nargs="+", default=[1024, 4096], help="K values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for k in args.queue:
        fraction = stale_fraction(args.size, args.batch, args.iters, k, args.seed)
        print(f"K = {k}: {100 * fraction:.1f} % of the queries meet an older key of their own image")


if __name__ == "__main__":
    main()
