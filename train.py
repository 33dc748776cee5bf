"""The train stage of one cell: `python train.py [overrides]`; `-m` sweeps, e.g. generator=gpt4o,gpt4o_mini."""
import hydra
from omegaconf import DictConfig

from agora.cli import run_stage


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg)  # the sweep's metric


if __name__ == "__main__":
    main()
