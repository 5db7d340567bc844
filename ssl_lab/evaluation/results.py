"""Where an evaluation run (`--eval-only`) leaves its results."""

import json
import logging
import os

from ssl_lab.utils.files import atomic_write

logger = logging.getLogger(__name__)


def save_eval_results(cfg, results: dict) -> str:
    """Write OUTPUT_DIR/eval/results.json ({metric: value}, plus the weights evaluated) and the
    config.yaml that produced them; returns the folder. Call on the main process."""
    folder = os.path.join(cfg.OUTPUT_DIR, "eval")
    os.makedirs(folder, exist_ok=True)
    with atomic_write(os.path.join(folder, "results.json"), "w") as f:
        json.dump({"weights": cfg.MODEL.WEIGHTS, "results": results}, f, indent=2)
    with atomic_write(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    logger.info(f"Evaluation results saved to {os.path.join(folder, 'results.json')}")
    return folder
