"""The options of each config group, typed: every field a user can set in `model=`, `data=`,
`optim=` and `schedule=`, with its default and why, and the table that names each option's
schema (`conf/<group>/<option>.yaml` extends `<option>_schema`). The whole config's schema,
and how Hydra is told of these, is dlrun/config/schema.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional

# omegaconf.MISSING itself ("???", a mandatory value), spelled out so that the report can read
# the schemas without importing OmegaConf (~0.3 s of its start-up); test_config checks they agree.
MISSING = "???"


class Choice(str, Enum):
    """A fixed set of words: a str, so code and files compare and store it as plain text."""

    def __str__(self) -> str:
        return self.value


Pooling = Choice("Pooling", {"max": "max", "avg": "avg"})
StackPooling = Choice("StackPooling", {"max": "max", "avg": "avg", "none": "none"})
ConvLowering = Choice("ConvLowering", {name: name for name in ("auto", "xla", "im2col", "batch_last")})
Shortcut = Choice("Shortcut", {name: name for name in ("projection", "identity")})
Scaling = Choice("Scaling", {name: name for name in ("standardize", "unit", "none")})
TargetScaling = Choice("TargetScaling", {name: name for name in ("standardize", "none")})
LrScaling = Choice("LrScaling", {name: name for name in ("none", "linear", "sqrt")})
DataTask = Choice("DataTask", {name: name for name in ("auto", "classification", "regression")})
Color = Choice("Color", {name: name for name in ("grey", "rgb")})
Cue = Choice("Cue", {name: name for name in ("none", "corner")})
StoppingMetric = Choice("StoppingMetric", {name: name for name in ("val_loss", "val_accuracy")})
# auto: what the data says (classification or regression), or reconstruct for a model whose
# output is an image (dlrun/models/tasks.py)
Task = Choice("Task", {name: name for name in ("auto", "reconstruct", "denoise")})
Upsample = Choice("Upsample", {name: name for name in ("transposed", "nearest", "bilinear")})
Encoder = Choice("Encoder", {name: name for name in ("conv", "mlp")})


# Each option of a config group has its own schema, so a run's config holds only what means
# something for it: `conf/<group>/<option>.yaml` extends `<option>_schema` (Hydra's
# structured-config schema pattern) and the base class holds what every option shares.


@dataclass
class ModelConfig:
    name: str = MISSING
    # the layers that train: all | head | lastN | names joined by + (fc2+output); the others are
    # frozen (dlrun/training/transfer.py)
    trainable: str = "all"


@dataclass
class MLPConfig(ModelConfig):
    hidden: List[int] = field(default_factory=lambda: [512, 256])  # widths; [] = linear model
    dropout: float = 0.0  # drop probability after each hidden activation
    batch_norm: bool = False  # BatchNorm before each hidden activation


@dataclass
class LeNetConfig(ModelConfig):
    pooling: Pooling = Pooling.max
    conv_lowering: ConvLowering = ConvLowering.auto  # auto: the fastest for the backend
    dropout: float = 0.0  # drop probability after each dense hidden layer
    batch_norm: bool = False  # BatchNorm after each convolution and dense hidden layer


@dataclass
class CNNConfig(ModelConfig):  # dlrun/models/cnn.py; kernel..dilation apply to every conv layer
    channels: List[int] = field(default_factory=lambda: [32, 64])  # one conv layer per entry
    kernel: int = 3
    padding: int = 1  # zeros on each side; 1 keeps a 3x3 conv's map size
    stride: int = 1
    dilation: int = 1
    pool: StackPooling = StackPooling.max  # after each conv layer's activation
    pool_size: int = 2  # non-overlapping window: the map shrinks to floor(W / pool_size)
    batch_norm: bool = False  # BatchNorm before each activation (conv and dense)
    dense: List[int] = field(default_factory=lambda: [128])  # hidden widths of the dense head
    global_pool: bool = False  # average each channel over the map instead of flattening
    dropout: float = 0.0  # drop probability on the input of each dense layer
    conv_lowering: ConvLowering = ConvLowering.auto


@dataclass
class AlexNetConfig(ModelConfig):  # dlrun/models/alexnet.py: why it is scaled as it is
    width: float = 0.25  # multiplier of every width (1.0: 64-192-384-256-256 conv, 4096 dense)
    dropout: float = 0.5  # AlexNet's, on the input of each dense layer
    batch_norm: bool = False  # not in the original (2012 predates it)
    conv_lowering: ConvLowering = ConvLowering.auto


@dataclass
class VGGConfig(ModelConfig):  # dlrun/models/vgg.py
    depth: int = 11  # weight layers: 11, 13 or 16 (VGG's configurations A, B, D)
    width: float = 0.25  # multiplier of every width (1.0: 64..512 conv, 512 dense)
    dropout: float = 0.5  # VGG's, on the input of each dense layer
    batch_norm: bool = False  # VGG-BN: BatchNorm before each activation
    conv_lowering: ConvLowering = ConvLowering.auto


@dataclass
class ResNetConfig(ModelConfig):
    depth: int = 20  # 6n+2: n basic blocks per stage (dlrun/models/resnet.py)
    width: int = 1  # channel multiplier on 16/32/64
    skip: bool = True  # false: the plain net of the same depth (no additions)
    shortcut: Shortcut = Shortcut.projection  # where the shape changes: 1x1 conv + BN, or zero-pad
    dropout: float = 0.0  # drop probability on the pooled features, before the output layer
    conv_lowering: ConvLowering = ConvLowering.auto  # auto: the fastest for the backend


@dataclass
class AutoencoderConfig(ModelConfig):  # dlrun/models/autoencoder.py
    encoder: Encoder = Encoder.conv  # conv: one 3x3 conv per `channels` entry; mlp: dense layers
    channels: List[int] = field(default_factory=lambda: [16, 32])  # widths of the maps, input side first
    hidden: List[int] = field(default_factory=lambda: [256])  # encoder=mlp: dense widths before the code
    # each encoder conv shrinks the map by `stride`; each decoder layer grows it back by as much
    upsample: Upsample = Upsample.transposed  # how the decoder grows a map (dlrun/models/upsample.py)
    kernel: int = 4  # the decoder's kernel: a multiple of the stride avoids the checkerboard
    stride: int = 2
    padding: int = 1  # the transposed conv's crop on each border
    # added at the bottom and right of a transposed conv's output; null: what makes each map the
    # size of its encoder twin, if a value in [0, stride) does
    output_padding: Optional[int] = None
    dropout: float = 0.0  # drop probability on the code (the encoder's output)


# A model node with `_target_` (dlrun/targets.py) is this option, whatever else it holds; the
# contract its module keeps is in dlrun/models/user.py.
USER_MODEL = "user"


@dataclass
class UserModelConfig(ModelConfig):
    name: str = USER_MODEL
    # module.Class or module.factory, imported from the working directory: nets.WideMLP is
    # class WideMLP in ./nets.py. Every other field (+model.width=64) is one of its arguments.
    _target_: str = MISSING


@dataclass
class DataConfig:
    name: str = MISSING
    subset: Optional[int] = None  # cap on training examples, taken after the validation split
    val_size: int = 5000  # carved from the training pool for curves and early stopping
    scaling: Scaling = Scaling.standardize  # of the inputs
    seed: int = 0  # separate from the run seed so that a sweep over seeds sees the same data


@dataclass
class ImageDataConfig(DataConfig):
    # keep these classes, relabelled 0..k-1 in this order (e.g. [5,6,7,8,9]); null = all
    classes: Optional[List[int]] = None
    # training examples per class, the first of each class in the seeded split; null = all
    per_class: Optional[int] = None


@dataclass
class MnistConfig(ImageDataConfig):
    pass


@dataclass
class GeneratedConfig(DataConfig):
    n_samples: int = 2000  # training pool (train + validation)
    n_test: int = 1000  # independently drawn test set
    noise: float = 0.1  # noise std on coordinates or targets


@dataclass
class BlobsConfig(GeneratedConfig):
    classes: int = 3  # number of clusters
    val_size: int = 500  # a quarter of the pool: 2-D sets need no 5,000 to read a curve
    noise: float = 1.0  # cluster std: neighbouring clusters overlap a little


@dataclass
class PatchesConfig(GeneratedConfig):  # dlrun/data/patches.py: what decides the class, and the cue
    val_size: int = 500
    noise: float = 0.4  # the background: pixels uniform in 0..noise*255 (the patch is 130)
    cue: Cue = Cue.none  # corner: a mark giving the class away, on the training pool only


@dataclass
class RegressionDataConfig(GeneratedConfig):
    target_scaling: TargetScaling = TargetScaling.standardize


@dataclass
class OwnDataConfig(DataConfig):  # the user's own data, from a file or a function
    task: DataTask = DataTask.auto  # auto: classification for whole-number or word targets
    val_size: int = 200  # carved (stratified for classes) where the file has no validation split
    test_size: int = 200  # carved likewise where it has no test split
    classes: Optional[List[int]] = None  # as for the image sets: keep these labels, relabelled 0..k-1
    per_class: Optional[int] = None
    target_scaling: TargetScaling = TargetScaling.standardize  # of regression targets


@dataclass
class FileDataConfig(OwnDataConfig):  # the user's own file: dlrun/data/files.py
    path: str = MISSING  # from the working directory; the run records it absolute, with its sha256


# A data node with `_target_` is this option, whatever else it holds; the contract its function
# keeps is in dlrun/data/loader.py.
USER_DATA = "loader"


@dataclass
class LoaderDataConfig(OwnDataConfig):
    name: str = USER_DATA
    # module.function, imported from the working directory: loaders.digits is def digits() in
    # ./loaders.py. Every other field (+data.n=500) is one of its arguments.
    _target_: str = MISSING


# Options whose node is an open dict: the fields a user's module or loader takes are not known
# here, so the schema types the fields above and lets any other through.
OPEN_SCHEMAS = (UserModelConfig, LoaderDataConfig)
# The open option of each group that has one: a node with `_target_` is it.
USER_OPTIONS = {"model": USER_MODEL, "data": USER_DATA}


@dataclass
class CsvConfig(FileDataConfig):
    target: str = MISSING  # the column to predict; every other column is a numeric feature


@dataclass
class ImageFolderConfig(DataConfig):  # a folder of the user's images: dlrun/data/images.py
    path: str = MISSING  # one folder per class, or train/ (val/, test/) of them; recorded absolute
    size: List[int] = field(default_factory=lambda: [32, 32])  # [height, width] every image is resized to
    color: Color = Color.rgb  # grey: one channel; rgb: three (an image of the other kind is converted)
    val_size: int = 200  # carved (stratified) where the folder has no val/
    test_size: int = 200  # carved likewise where it has no test/
    classes: Optional[List[int]] = None  # keep these (class folders in sorted order), relabelled 0..k-1
    per_class: Optional[int] = None


@dataclass
class OptimConfig:
    name: str = MISSING
    l2: float = 0.0  # L2 penalty lambda * sum(w^2) over weight matrices, added to the loss
    clip_norm: float = 0.0  # clip the global gradient norm to this value; 0 = off
    lr_scaling: LrScaling = LrScaling.none  # scale lr by batch_size / base_batch_size
    base_batch_size: int = 128  # the batch size at which `lr` is meant


@dataclass
class SGDConfig(OptimConfig):
    pass


@dataclass
class MomentumConfig(OptimConfig):  # momentum and nesterov
    momentum: float = 0.9


@dataclass
class RMSPropConfig(OptimConfig):
    decay: float = 0.9  # the moving average's coefficient
    eps: float = 1e-8
    momentum: float = 0.0


@dataclass
class AdagradConfig(OptimConfig):
    eps: float = 1e-8


@dataclass
class AdamConfig(OptimConfig):
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8


@dataclass
class AdamWConfig(AdamConfig):
    weight_decay: float = 1e-4  # decoupled weight decay; not the same thing as l2


@dataclass
class ScheduleConfig:
    name: str = MISSING
    # Epochs at which the schedule starts again over the epochs that follow (a warm restart):
    # `--resume DIR epochs=N` adds one when it extends a run, so config.yaml says how it ran.
    restarts: List[int] = field(default_factory=list)


@dataclass
class ConstantConfig(ScheduleConfig):
    pass


@dataclass
class StepConfig(ScheduleConfig):
    decay_epochs: float = 3.0  # drop every this many epochs
    gamma: float = 0.1  # multiplier per drop


@dataclass
class ExponentialConfig(ScheduleConfig):
    gamma: float = 0.8  # multiplier per epoch


@dataclass
class CosineConfig(ScheduleConfig):
    end_factor: float = 0.0  # final lr as a fraction of lr


@dataclass
class WarmupCosineConfig(CosineConfig):
    warmup_epochs: float = 1.0  # linear ramp from 0


# group -> option -> its schema; `conf/<group>/<option>.yaml` names it in its defaults
OPTION_SCHEMAS = {
    "model": {
        "mlp": MLPConfig,
        "lenet": LeNetConfig,
        "cnn": CNNConfig,
        "alexnet": AlexNetConfig,
        "vgg": VGGConfig,
        "resnet": ResNetConfig,
        "autoencoder": AutoencoderConfig,
        USER_MODEL: UserModelConfig,
    },
    "data": {
        "mnist": MnistConfig,
        "fashion_mnist": ImageDataConfig,
        "cifar10": ImageDataConfig,
        **{name: GeneratedConfig for name in ("xor", "moons", "circles", "spirals")},
        "blobs": BlobsConfig,
        "patches": PatchesConfig,
        "rosenbrock": RegressionDataConfig,
        "poly1d": RegressionDataConfig,
        "npz": FileDataConfig,
        "csv": CsvConfig,
        "image_folder": ImageFolderConfig,
        USER_DATA: LoaderDataConfig,
    },
    "optim": {
        "sgd": SGDConfig,
        "momentum": MomentumConfig,
        "nesterov": MomentumConfig,
        "rmsprop": RMSPropConfig,
        "adagrad": AdagradConfig,
        "adam": AdamConfig,
        "adamw": AdamWConfig,
    },
    "schedule": {
        "constant": ConstantConfig,
        "step": StepConfig,
        "exponential": ExponentialConfig,
        "cosine": CosineConfig,
        "warmup_cosine": WarmupCosineConfig,
    },
}
GROUPS = tuple(OPTION_SCHEMAS)
