import pytest
import yaml
from omegaconf import OmegaConf

from dlrun.config import options, schema
from dlrun.config.compose import group_options, to_yaml
from dlrun.config.load import compose_config, load_run_config
from dlrun.errors import ConfigError
from dlrun.layout import conf_dir

CONF_DIR = conf_dir()


@pytest.mark.parametrize("group", ["model", "data", "optim", "schedule"])
def test_every_option_of_every_group_composes(group):
    for option in group_options(group):
        extra = ["data=mnist"] if group == "model" else ["model=mlp"]
        if option == "user":  # names a module of the user's own: tests/test_user_models.py
            continue
        # the user's files and folders: tests/test_data_files.py, tests/test_data_images.py
        if group == "data" and option in ("npz", "csv", "image_folder"):
            continue
        if group == "data" and option == "loader":  # a function of the user's: test_data_loader.py
            continue
        if group == "schedule":
            extra.append("epochs=5")
        cfg = compose_config([f"{group}={option}", *extra])
        assert cfg[group].name == option


def test_the_issue_commands_compose_literally():
    cfg = compose_config(
        "model=mlp lr=0.01 batch_size=64 init=he_normal activation=tanh optim=momentum epochs=20".split()
    )
    assert (cfg.lr, cfg.batch_size, cfg.init, cfg.activation, cfg.optim.name, cfg.epochs) == (
        0.01,
        64,
        "he_normal",
        "tanh",
        "momentum",
        20,
    )
    cfg = compose_config(["model.hidden=[512,256]", "data.subset=1000"])
    assert list(cfg.model.hidden) == [512, 256] and cfg.data.subset == 1000


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model=unet",
            "unknown model 'unet' (choose from: alexnet, autoencoder, cnn, lenet, mlp, resnet, user, vgg)",
        ),
        ("data=cifar", "unknown data 'cifar'"),
        ("optim=lion", "unknown optim 'lion'"),
        ("init=magic", "unknown init 'magic'"),
        ("activation=swish2", "unknown activation 'swish2'"),
        ("loss=hinge", "unknown loss 'hinge'"),
        ("lr2=0.1", "unknown config key 'lr2'"),
        (
            "model.depth=3",
            "model mlp has no field 'depth'; its fields: name, trainable, hidden, dropout, batch_norm",
        ),
        ("+extra=1", "unknown config key 'extra'"),
        ("lr=-0.1", "lr must be > 0, got -0.1"),
        ("batch_size=0", "batch_size must be > 0, got 0"),
        ("lr=fast", "lr=fast is not a valid float"),
        ("epochs=ten", "epochs=ten is not a valid integer"),
        ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(override, message):
    with pytest.raises(ConfigError) as caught:
        compose_config([override])
    text = str(caught.value)
    assert message in text and "\n" not in text


def test_unknown_choice_lists_valid_choices():
    with pytest.raises(ConfigError) as caught:
        compose_config(["activation=swish2"])
    for name in ("relu", "tanh", "prelu", "maxout"):
        assert name in str(caught.value)


def test_resolved_config_round_trips_through_the_run_folder_format(tmp_path):
    cfg = compose_config(["model=lenet", "lr=0.02"])
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    again = load_run_config(tmp_path)
    assert OmegaConf.to_container(again) == OmegaConf.to_container(cfg)


# Each option has its own schema: a run's config holds only the fields that mean something for it.
OWN_FIELDS = [
    (["model=lenet"], "model", {"name", "trainable", "pooling", "conv_lowering", "dropout", "batch_norm"}),
    (["model=mlp"], "model", {"name", "trainable", "hidden", "dropout", "batch_norm"}),
    (["data=mnist"], "data", {"name", "subset", "val_size", "scaling", "seed", "classes", "per_class"}),
    (["data=cifar10"], "data", {"name", "subset", "val_size", "scaling", "seed", "classes", "per_class"}),
    (
        ["data=blobs"],
        "data",
        {"name", "subset", "val_size", "scaling", "seed", "n_samples", "n_test", "noise", "classes"},
    ),
    (["optim=sgd"], "optim", {"name", "l2", "clip_norm", "lr_scaling", "base_batch_size"}),
    (
        ["optim=adamw"],
        "optim",
        {"name", "l2", "clip_norm", "lr_scaling", "base_batch_size", "b1", "b2", "eps", "weight_decay"},
    ),
    (["schedule=constant"], "schedule", {"name", "restarts"}),
]


@pytest.mark.parametrize("overrides, group, fields", OWN_FIELDS)
def test_a_config_holds_only_the_fields_of_its_options(overrides, group, fields):
    cfg = compose_config(overrides)
    assert set(cfg[group]) == fields


def test_fixed_choices_are_enums_that_read_and_write_as_words(tmp_path):
    cfg = compose_config(["model=lenet", "model.pooling=avg"])
    assert cfg.model.pooling == "avg" and "pooling: avg" in to_yaml(cfg)
    with pytest.raises(ConfigError, match="model.pooling=mean is not one of: max, avg"):
        compose_config(["model=lenet", "model.pooling=mean"])


LEGACY_CONFIG = """\
model: {name: lenet, hidden: [512, 256], dropout: 0.0, batch_norm: false, pooling: max,
        conv_lowering: auto}
data: {name: mnist, subset: 2000, val_size: 1000, n_samples: 2000, n_test: 1000, noise: 0.1,
       classes: 3, scaling: standardize, target_scaling: standardize, seed: 0}
optim: {name: adam, momentum: 0.9, b1: 0.9, b2: 0.999, eps: 1.0e-08, decay: 0.9, weight_decay: 0.0,
        l2: 0.0, clip_norm: 0.0, lr_scaling: none, base_batch_size: 128}
schedule: {name: cosine, warmup_epochs: 0.0, decay_epochs: 1.0, gamma: 0.1, end_factor: 0.0}
early_stopping: {patience: 0, metric: val_loss, min_delta: 0.0, restore_best: true}
augment: {shift: 1, noise_std: 0.0}
lr: 0.002
batch_size: 128
epochs: 2
seed: 0
init: auto
init_scale: null
bias_init: zeros
bias_scale: 0.0
activation: relu
activation_slope: 0.01
maxout_pieces: 2
loss: auto
huber_delta: 1.0
eval_batch_size: 1000
name: null
"""


def test_a_run_folder_written_before_per_option_schemas_still_loads(tmp_path):
    """The flat schema gave every option every field (an MLP's `hidden` in a LeNet run)."""
    (tmp_path / "config.yaml").write_text(LEGACY_CONFIG)
    cfg = load_run_config(tmp_path)
    assert cfg.model.name == "lenet" and "hidden" not in cfg.model and "noise" not in cfg.data
    assert cfg.data.classes is None  # the flat schema's blobs count, meaningless for MNIST
    assert cfg.optim.b1 == 0.9 and "momentum" not in cfg.optim
    assert cfg.schedule.restarts == [] and "gamma" not in cfg.schedule


def test_the_schema_missing_marker_is_omegaconfs():
    """schema.py spells MISSING out so that the report need not import OmegaConf."""
    import omegaconf

    from dlrun.config import schema

    assert schema.MISSING == omegaconf.MISSING


def _shared(group: str, schema_class) -> bool:
    return sum(cls is schema_class for cls in options.OPTION_SCHEMAS[group].values()) > 1


def _written_defaults():
    """(file, key, value written there, schema default) for every field an option's YAML sets."""
    for path in sorted((CONF_DIR).glob("*/*.yaml")):
        group, option = path.parent.name, path.stem
        schema_class = options.OPTION_SCHEMAS.get(group, {}).get(option)
        if schema_class is None:  # preset/: settings across groups, not an option with a schema
            continue
        written = yaml.safe_load(path.read_text())
        written = written.get(group, written)  # `# @package _global_` options nest their fields
        defaults = OmegaConf.to_container(OmegaConf.structured(schema_class))
        for key, value in written.items():
            if key not in ("defaults", "name"):
                yield path, key, value, defaults.get(key, "<not in the schema>"), _shared(group, schema_class)
        yield path, "name", written.get("name"), option, False
    top = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    defaults = OmegaConf.to_container(OmegaConf.structured(schema.Config))
    for key, value in _flat(top):
        if key != "defaults":
            yield CONF_DIR / "config.yaml", key, value, _get(defaults, key), False


def _flat(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _get(node: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return "<not in the schema>"
        node = node[part]
    return node


def test_an_options_yaml_and_its_schema_agree_on_every_default():
    """A default is written in the option's YAML (what `dlrun config show` and a reader see) and
    in its schema dataclass (typed, with why): they must say the same. Where one schema serves
    several options (the generated 2-D sets), the YAML alone holds each option's values."""
    disagree = [
        f"{path.relative_to(CONF_DIR)}: {key}={value!r}, schema {default!r}"
        for path, key, value, default, shared in _written_defaults()
        if value != default and not (shared and default != "<not in the schema>")
    ]
    assert not disagree, disagree
    checked = {path.parent.name for path, *_ in _written_defaults() if path.parent != CONF_DIR}
    assert checked == {"model", "data", "optim", "schedule"}
