import pytest
from omegaconf import OmegaConf

from dlrun.errors import ConfigError
from dlrun.config.compose import group_options, to_yaml
from dlrun.config.load import compose_config, load_run_config


@pytest.mark.parametrize("group", ["model", "data", "optim", "schedule"])
def test_every_option_of_every_group_composes(group):
    for option in group_options(group):
        extra = ["data=mnist"] if group == "model" else ["model=mlp"]
        if group == "schedule":
            extra.append("epochs=5")
        cfg = compose_config([f"{group}={option}", *extra])
        assert cfg[group].name == option


def test_the_issue_commands_compose_literally():
    cfg = compose_config("model=mlp lr=0.01 batch_size=64 init=he_normal activation=tanh "
                         "optim=momentum epochs=20".split())
    assert (cfg.lr, cfg.batch_size, cfg.init, cfg.activation, cfg.optim.name, cfg.epochs) == (
        0.01, 64, "he_normal", "tanh", "momentum", 20)
    cfg = compose_config(["model.hidden=[512,256]", "data.subset=1000"])
    assert list(cfg.model.hidden) == [512, 256] and cfg.data.subset == 1000


@pytest.mark.parametrize("override, message", [
    ("model=resnet", "unknown model 'resnet' (choose from: lenet, mlp)"),
    ("data=cifar", "unknown data 'cifar'"),
    ("optim=lion", "unknown optim 'lion'"),
    ("init=magic", "unknown init 'magic'"),
    ("activation=swish2", "unknown activation 'swish2'"),
    ("loss=hinge", "unknown loss 'hinge'"),
    ("lr2=0.1", "unknown config key 'lr2'"),
    ("model.depth=3", "unknown config key 'model.depth' (valid keys in model: name, hidden"),
    ("+extra=1", "unknown config key 'extra'"),
    ("lr=-0.1", "lr must be > 0, got -0.1"),
    ("batch_size=0", "batch_size must be > 0, got 0"),
    ("lr=fast", "lr=fast is not a valid float"),
    ("epochs=ten", "epochs=ten is not a valid integer"),
    ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
    ("batch_size=100000", "batch_size 100000 exceeds the 55000 training examples"),
])
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
