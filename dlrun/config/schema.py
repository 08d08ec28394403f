"""The config schema: every key a user can set, typed, with its default and why.

Registered in Hydra's ConfigStore, so composing refuses an unknown key or a value of the wrong
type with the key's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelConfig:
    name: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [512, 256])  # MLP widths; [] = linear model
    dropout: float = 0.0  # drop probability after each hidden activation (MLP) / dense layer (LeNet)
    batch_norm: bool = False  # BatchNorm before each hidden activation
    pooling: str = "max"  # LeNet: max | avg
    conv_lowering: str = "auto"  # LeNet: auto picks the fastest convolution for the backend


@dataclass
class DataConfig:
    name: str = "mnist"
    subset: Optional[int] = None  # cap on training examples, taken after the validation split
    val_size: int = 5000  # carved from the training pool for curves and early stopping
    n_samples: int = 2000  # generated sets: training pool (train + validation)
    n_test: int = 1000  # generated sets: independently drawn test set
    noise: float = 0.1  # generated sets: noise std on coordinates or targets
    classes: int = 3  # blobs: number of clusters
    scaling: str = "standardize"  # inputs: standardize | unit | none
    target_scaling: str = "standardize"  # regression targets: standardize | none
    seed: int = 0  # separate from the run seed so that a sweep over seeds sees the same data


@dataclass
class OptimConfig:
    name: str = "adam"
    momentum: float = 0.9  # momentum, nesterov, rmsprop
    b1: float = 0.9  # adam, adamw
    b2: float = 0.999  # adam, adamw
    eps: float = 1e-8  # adam, adamw, rmsprop, adagrad
    decay: float = 0.9  # rmsprop's moving-average coefficient
    weight_decay: float = 0.0  # decoupled weight decay (adamw); not the same thing as l2 below
    l2: float = 0.0  # L2 penalty lambda * sum(w^2) over weight matrices, added to the loss
    clip_norm: float = 0.0  # clip the global gradient norm to this value; 0 = off
    lr_scaling: str = "none"  # none | linear | sqrt: scale lr by batch_size / base_batch_size
    base_batch_size: int = 128  # the batch size at which `lr` is meant


@dataclass
class ScheduleConfig:
    name: str = "constant"
    warmup_epochs: float = 0.0  # warmup_cosine: linear ramp from 0
    decay_epochs: float = 1.0  # step: drop every this many epochs
    gamma: float = 0.1  # step / exponential: multiplier per drop / per epoch
    end_factor: float = 0.0  # cosine, warmup_cosine: final lr as a fraction of lr
    # Epochs at which the schedule starts again over the epochs that follow (a warm restart):
    # `--resume DIR epochs=N` adds one when it extends a run, so config.yaml says how it ran.
    restarts: List[int] = field(default_factory=list)


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # epochs without improvement before stopping; 0 = off
    metric: str = "val_loss"  # val_loss (lower is better) | val_accuracy (higher is better)
    min_delta: float = 0.0  # an improvement smaller than this does not count
    restore_best: bool = True  # evaluate the test set with the best epoch's parameters


@dataclass
class AugmentConfig:
    shift: int = 0  # images: random translation of up to this many pixels
    noise_std: float = 0.0  # gaussian noise added to the (scaled) inputs


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    init: str = "auto"  # weight init; auto = he_normal for relu-like, glorot_uniform otherwise
    init_scale: Optional[float] = None  # normal: std, uniform: half-width, constant: value, orthogonal: gain
    bias_init: str = "zeros"  # zeros | constant | normal | uniform
    bias_scale: float = 0.0  # like init_scale, for biases
    activation: str = "relu"
    activation_slope: float = 0.01  # leaky_relu's slope, prelu's initial slope
    maxout_pieces: int = 2  # maxout: linear pieces per unit
    loss: str = "auto"  # auto = softmax cross-entropy for classification, mse for regression
    huber_delta: float = 1.0
    eval_batch_size: int = 1000
    name: Optional[str] = None  # run name for the default output folder; None = <model>-<data>


GROUP_SCHEMAS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
}


def register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="dlrun_schema", node=Config)
    for group, schema in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"{group}_schema", node=schema)
