"""Short and full trainings: the DARTS recipe (recipe.py), `fne train` (train.py), and the two short trainings
that judge search candidates: DARTS tournaments (tournament.py) and the finalists' stage (finalists.py).

`from fne.training import TrainConfig, train_model, ...` keeps the names the former module fne/training.py had.
"""

from fne.training.recipe import (
    Optimisation,
    TrainConfig,
    augment_batch,
    crop_at,
    cutout_at,
    evaluate,
    random_crop,
    random_cutout,
    random_flip,
    train_epoch,
)
from fne.training.train import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    LOG_COLUMNS,
    RESUMABLE_DIFFERENCES,
    TrainResult,
    default_paths,
    prepare_data,
    train_model,
)

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "LOG_COLUMNS", "RESUMABLE_DIFFERENCES", "Optimisation",
           "TrainConfig", "TrainResult", "augment_batch", "crop_at", "cutout_at", "default_paths", "evaluate",
           "prepare_data", "random_crop", "random_cutout", "random_flip", "train_epoch", "train_model"]
