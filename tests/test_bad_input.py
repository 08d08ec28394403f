"""Every bad input the CLI can be given: one `error:` line, exit code 2, no traceback, and
nothing written. Each case runs the real command (`python -m dlrun`) in a fresh folder, so the
guard covers argument parsing, the `user_errors` wrapper and `main()` too.

Each case is refused before any training: a subprocess costs only the imports (~2-3 s).
"""

import gzip
import json
import os
import subprocess
import sys

import pytest
from conftest import SHARED_DATA

TRAIN = ["train", "data=xor"]
SWEEP = ["sweep", "data=xor"]


def a_file(tmp):
    (tmp / "afile").write_text("not a folder")


def a_locked_folder(tmp):
    """A place no one may write into. Root writes through any mode bits, so for root the
    'folder' is a file: creating anything under it fails for every user."""
    if os.geteuid() == 0:
        (tmp / "locked").write_text("")
    else:
        (tmp / "locked").mkdir(mode=0o500)


def a_train_run(tmp):
    """The files `dlrun report` reads from a run folder, enough for one row without warnings."""
    (tmp / "run").mkdir()
    (tmp / "run" / "config.yaml").write_text("lr: 0.001\n")
    (tmp / "run" / "summary.json").write_text(json.dumps({"status": "completed"}))
    (tmp / "run" / "metrics.csv").write_text("epoch,train_loss,val_loss\n1,0.5,0.6\n")


def a_sweep_file(text):
    def setup(tmp):
        (tmp / "sweep").mkdir()
        (tmp / "sweep" / "sweep.yaml").write_text(text)

    return setup


def corrupt_mnist(tmp):
    """Truncated gzip files where MNIST is looked up (as a broken download leaves them)."""
    (tmp / "data" / "mnist").mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        whole = gzip.compress(bytes(range(256)) * 64)
        (tmp / "data" / "mnist" / name).write_bytes(whole[: len(whole) // 2])


def a_study_of_lr_alone(tmp):
    """An Optuna study 's' in other.db made by a sweep over lr alone."""
    from optuna.distributions import FloatDistribution

    from dlrun.sweep import study_store

    storage = study_store.open_storage(f"sqlite:///{tmp / 'other.db'}")
    study_store.open_study(
        storage,
        "s",
        {"lr": FloatDistribution(1e-3, 1, log=True)},
        "best_val_accuracy",
        ["maximize"],
        None,
        None,
    )
    storage.engine.dispose()


def without_ray(tmp):
    """An environment where `import ray` fails as it does where Ray is not installed."""
    (tmp / "no-ray" / "ray").mkdir(parents=True)
    (tmp / "no-ray" / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")


def case(case_id, args, *fragments, setup=None, env=None):
    return pytest.param(args, fragments, setup, env or {}, id=case_id)


CASES = [
    # train: the output folder, checked before any data loads
    case("train-out-is-a-file", [*TRAIN, "--out", "afile"], "--out afile", "afile is a file", setup=a_file),
    case("train-out-under-a-file", [*TRAIN, "--out", "afile/run"], "afile is a file", setup=a_file),
    case(
        "train-out-unwritable",
        [*TRAIN, "--out", "locked/run"],
        "--out locked/run",
        "locked",
        setup=a_locked_folder,
    ),
    case("train-out-holds-a-run", [*TRAIN, "--out", "run"], "--out run", "cannot be used", setup=a_train_run),
    case(
        "train-out-holds-a-sweep",
        [*TRAIN, "--out", "sweep"],
        "--out sweep holds a sweep",
        setup=a_sweep_file("command: x\nplan: {trials: []}\n"),
    ),
    # train: override syntax
    case("train-double-equals", [*TRAIN, "lr==1"], "cannot parse 'lr==1'", "write key=value"),
    case("train-no-key", [*TRAIN, "=1"], "'=1' has no key", "write key=value"),
    case("train-no-equals", [*TRAIN, "lr"], "'lr' has no '='", "e.g. lr=0.01"),
    case("train-unbalanced-list", [*TRAIN, "model.hidden=[8,8"], "cannot parse 'model.hidden=[8,8'"),
    case("train-delete-key", [*TRAIN, "~lr"], "'~lr' deletes a key", "e.g. lr=0.001"),
    case("train-delete-group", [*TRAIN, "~optim"], "'~optim' deletes a key", "optim=adam"),
    case("train-add-existing-key", [*TRAIN, "+lr=1"], "'+lr=1' adds a key", "set it with lr=1"),
    case("train-add-unknown-key", [*TRAIN, "+foo=1"], "unknown config key 'foo'"),
    case(
        "train-sweep-values", [*TRAIN, "lr=0.1,0.01"], "'lr=0.1,0.01' is a sweep", "dlrun sweep lr=0.1,0.01"
    ),
    case("train-interval", [*TRAIN, "lr=interval(1e-4,1e-1)"], "dlrun sweep lr=interval(1e-4,1e-1)"),
    case("train-experiment", ["train", "experiment=init"], "dlrun sweep experiment=init"),
    case("train-unknown-option", [*TRAIN, "--bogus"], "No such option: --bogus", "--help"),
    # train: what an override may not be (an override is data; the run folder is --out)
    case(
        "train-env-interpolation",
        [*TRAIN, "lr=${oc.env:HOME}"],
        "'lr=${oc.env:HOME}' holds an interpolation",
        "not support in overrides",
        "e.g. lr=0.001",
    ),
    case("train-interpolation-in-a-list", [*TRAIN, "model.hidden=[${lr},8]"], "holds an interpolation"),
    case("train-added-interpolation", [*TRAIN, "+foo=${now:%H}"], "'+foo=${now:%H}' holds an interpolation"),
    case(
        "train-hydra-run-dir",
        [*TRAIN, "hydra.run.dir=x"],
        "'hydra.run.dir=x' sets Hydra's runtime",
        "--out DIR",
    ),
    case("train-hydra-group", [*TRAIN, "hydra/launcher=basic"], "sets Hydra's runtime"),
    case("config-show-interpolation", ["config", "show", "seed=${oc.env:HOME}"], "holds an interpolation"),
    # train: a name is one folder inside runs/
    case(
        "train-name-too-long",
        [*TRAIN, "name=" + "n" * 300],
        "is 300 bytes long, over the 255",
        "n" * 79 + "…",
    ),
    case(
        "train-name-climbs-out",
        [*TRAIN, "name=../../x"],
        "name=../../x cannot name the run's folder",
        "path separator",
    ),
    case("train-name-absolute", [*TRAIN, "name=/tmp/x"], "name=/tmp/x cannot name", "path separator"),
    case("train-name-dot-dot", [*TRAIN, "name=.."], "name=.. cannot name", "'..'"),
    # a value pasted by mistake is quoted in part: 79 characters and an ellipsis
    case("train-long-value", [*TRAIN, "lr=" + "x" * 5000], "lr=" + "x" * 79 + "… is not a valid float"),
    case(
        "train-long-group-option",
        [*TRAIN, "model=" + "x" * 5000],
        "unknown model '" + "x" * 79 + "…'",
        "choose from",
    ),
    case(
        "train-long-key",
        [*TRAIN, "model.f" + "x" * 5000 + "=1"],
        "model mlp has no field 'f" + "x" * 78 + "…'",
    ),
    case("train-long-override-without-equals", [*TRAIN, "x" * 5000], "'" + "x" * 79 + "…' has no '='"),
    case("sweep-long-option-value", [*SWEEP, "--trials", "x" * 5000], "got '" + "x" * 79 + "…'"),
    # train: unknown names
    case("train-unknown-key", [*TRAIN, "colour=red"], "unknown config key 'colour'"),
    case(
        "train-unknown-nested-key",
        [*TRAIN, "model.foo=1"],
        "model mlp has no field 'foo'",
        "its fields: name, trainable, hidden, dropout, batch_norm",
    ),
    # each option has only its own fields
    case(
        "train-lenet-has-no-hidden",
        [*TRAIN, "model=lenet", "model.hidden=[8]"],
        "model lenet has no field 'hidden'",
        "its fields: name, trainable, pooling, conv_lowering",
    ),
    case("train-sgd-has-no-b1", [*TRAIN, "optim=sgd", "optim.b1=0.5"], "optim sgd has no field 'b1'"),
    case("train-mnist-has-no-noise", ["train", "data.noise=0.5"], "data mnist has no field 'noise'"),
    case(
        "train-bad-pooling",
        [*TRAIN, "model=lenet", "model.pooling=mean"],
        "model.pooling=mean is not one of: max, avg",
    ),
    case(
        "train-resnet-bad-depth",
        ["train", "model=resnet", "model.depth=21"],
        "model.depth must be 6n+2, one of 8, 14, 20, 32, 44, 56, 110; got 21",
    ),
    case(
        "train-resnet-bad-shortcut",
        ["train", "model=resnet", "model.shortcut=conv"],
        "model.shortcut=conv is not one of: projection, identity",
    ),
    case(
        "sweep-lenet-hidden",
        ["sweep", "model=lenet", "model.hidden=[8],[16]"],
        "model lenet has no field 'hidden'",
    ),
    case("train-unknown-model", ["train", "model=foo"], "unknown model 'foo'", "lenet, mlp"),
    case("train-unknown-data", ["train", "data=foo"], "unknown data 'foo'", "moons"),
    case("train-unknown-optim", [*TRAIN, "optim=foo"], "unknown optim 'foo'", "adamw"),
    case("train-unknown-schedule", [*TRAIN, "schedule=foo"], "unknown schedule 'foo'", "cosine"),
    case("train-unknown-activation", [*TRAIN, "activation=foo"], "unknown activation 'foo'", "tanh"),
    case("train-unknown-init", [*TRAIN, "init=foo"], "unknown init 'foo'", "he_normal"),
    case("train-unknown-loss", [*TRAIN, "loss=foo"], "unknown loss 'foo'", "huber"),
    case("train-pooling-on-an-mlp", [*TRAIN, "model.pooling=foo"], "model mlp has no field 'pooling'"),
    # train: wrong types and ranges
    case("train-epochs-not-a-number", [*TRAIN, "epochs=abc"], "epochs=abc is not a valid integer"),
    case("train-epochs-fraction", [*TRAIN, "epochs=1.5"], "epochs=1.5 is not a valid integer"),
    case(
        "train-bool-not-a-bool",
        [*TRAIN, "model.batch_norm=maybe"],
        "model.batch_norm=maybe is not a valid bool",
    ),
    case("train-epochs-zero", [*TRAIN, "epochs=0"], "epochs must be > 0, got 0"),
    case("train-batch-size-negative", [*TRAIN, "batch_size=-1"], "batch_size must be > 0, got -1"),
    case("train-batch-size-zero", [*TRAIN, "batch_size=0"], "batch_size must be > 0, got 0"),
    # a batch larger than the data trains as one batch (tests/test_rough_edges.py); past 64 bits it is refused
    case(
        "train-batch-size-past-64-bits", [*TRAIN, f"batch_size={10**30}"], "is out of range: batch_size takes"
    ),
    case("train-lr-negative", [*TRAIN, "lr=-1"], "lr must be > 0, got -1"),
    case("train-lr-nan", [*TRAIN, "lr=nan"], "lr=nan is not a finite number", "e.g. lr=0.001"),
    case("train-lr-inf", [*TRAIN, "lr=inf"], "lr=inf is not a finite number"),
    case("train-eps-minus-inf", [*TRAIN, "optim.eps=-inf"], "optim.eps=-inf is not a finite number"),
    case("train-noise-nan", [*TRAIN, "augment.noise_std=nan"], "augment.noise_std=nan"),
    case("train-val-size-zero", [*TRAIN, "data.val_size=0"], "data.val_size must be > 0, got 0"),
    case("train-val-size-whole-pool", [*TRAIN, "data.val_size=2000"], "data.val_size=2000 leaves no"),
    case("train-subset-zero", [*TRAIN, "data.subset=0"], "data.subset=0"),
    case("train-dropout-one", [*TRAIN, "model.dropout=1"], "model.dropout must be in [0, 1)"),
    case("train-width-zero", [*TRAIN, "model.hidden=[0]"], "model.hidden widths must be > 0"),
    case("train-lenet-on-points", [*TRAIN, "model=lenet"], "model 'lenet' needs images", "use model=mlp"),
    # config show and list
    case("config-show-delete-group", ["config", "show", "~model"], "'~model' deletes a key", "model=mlp"),
    case("config-show-nan", ["config", "show", "lr=nan"], "lr=nan is not a finite number"),
    case("config-show-sweep-values", ["config", "show", "lr=0.1,0.01"], "dlrun sweep lr=0.1,0.01"),
    case("config-show-unknown-model", ["config", "show", "model=foo"], "unknown model 'foo'"),
    case("config-show-unknown-option", ["config", "show", "--bogus"], "No such option: --bogus"),
    case("list-extra-argument", ["list", "extra-arg"], "unexpected extra argument", "extra-arg"),
    case("list-unknown-option", ["list", "--bogus"], "No such option: --bogus"),
    # train: the image tasks (dlrun/models/tasks.py) and the decoder's geometry
    case(
        "train-denoise-without-noise",
        ["train", "model=autoencoder", "task=denoise"],
        "task=denoise needs augment.noise_std > 0",
    ),
    case(
        "train-unknown-upsample",
        ["train", "model=autoencoder", "model.upsample=pixelshuffle"],
        "model.upsample=pixelshuffle is not one of: transposed, nearest, bilinear",
    ),
    case(
        "train-transposed-size",
        ["train", "model=autoencoder", "model.padding=3"],
        "(7 - 1) * 2 - 2 * 3 + 4 = 10",
        "its encoder twin's side is 14",
    ),
    case(
        "train-reconstruct-with-a-classifier",
        ["train", "model=cnn", "task=reconstruct"],
        "task=reconstruct needs a model whose output is an image: model=autoencoder",
    ),
    case(
        "train-pixel-bce-standardized",
        ["train", "model=autoencoder", "loss=binary_cross_entropy_with_logits"],
        "needs targets in [0, 1]: set data.scaling=unit",
    ),
    # sweep: the output folder, and running again into one
    case("sweep-out-is-a-file", [*SWEEP, "lr=0.1,0.01", "--out", "afile"], "afile is a file", setup=a_file),
    case("sweep-out-under-a-file", [*SWEEP, "--out", "afile/s"], "afile is a file", setup=a_file),
    case(
        "sweep-out-unwritable",
        [*SWEEP, "lr=0.1,0.01", "--out", "locked/s"],
        "--out locked/s",
        setup=a_locked_folder,
    ),
    case(
        "sweep-out-is-a-train-run",
        [*SWEEP, "--out", "run"],
        "--out run holds a training run",
        setup=a_train_run,
    ),
    case(
        "sweep-out-empty-sweep-yaml",
        [*SWEEP, "--out", "sweep"],
        "sweep/sweep.yaml is empty",
        setup=a_sweep_file(""),
    ),
    case(
        "sweep-out-garbage-sweep-yaml",
        [*SWEEP, "--out", "sweep"],
        "sweep/sweep.yaml is empty or not a sweep record",
        setup=a_sweep_file(": : [\n"),
    ),
    case(
        "sweep-out-other-sweep",
        [*SWEEP, "lr=0.1,0.01", "--out", "sweep"],
        "--out sweep holds a different sweep",
        setup=a_sweep_file("command: old\nplan: {trials: []}\n"),
    ),
    case(
        "sweep-corrupt-data",
        ["sweep", "data.subset=500", "epochs=1", "lr=0.1,0.01"],
        "not a valid gzip file",
        setup=corrupt_mnist,
        env={"DLRUN_DATA_DIR": "data"},
    ),
    case(
        "sweep-side-by-side-not-a-number",
        SWEEP,
        "DLRUN_SIDE_BY_SIDE=two is not a whole number >= 1",
        env={"DLRUN_SIDE_BY_SIDE": "two"},
    ),
    case(
        "sweep-trials-per-pass-zero",
        SWEEP,
        "DLRUN_TRIALS_PER_PASS=0 is not a whole number >= 1",
        env={"DLRUN_TRIALS_PER_PASS": "0"},
    ),
    # sweep: the executor (the Ray cases connect, or start a local Ray, before writing anything)
    case(
        "sweep-executor-unknown",
        [*SWEEP, "--executor", "spark"],
        "unknown --executor 'spark'",
        "choices: local, ray",
    ),
    case(
        "sweep-executor-ray-with-jobs",
        [*SWEEP, "--executor", "ray", "--jobs", "2"],
        "--jobs is for --executor local",
    ),
    case("sweep-address-without-ray", [*SWEEP, "--address", "auto"], "--address auto needs --executor ray"),
    case(
        "sweep-ray-address-unreachable",
        [*SWEEP, "--executor", "ray", "--address", "127.0.0.1:9"],
        "--address 127.0.0.1:9: cannot reach 127.0.0.1:9",
        "ray start --head",
    ),
    case(
        "sweep-ray-address-malformed",
        [*SWEEP, "--executor", "ray", "--address", "nowhere"],
        "--address nowhere: give auto, host:port or ray://host:port",
    ),
    case(
        "sweep-ray-gpus-on-a-cpu-cluster",
        [*SWEEP, "--executor", "ray", "--gpus-per-group", "1"],
        "--gpus-per-group 1",
        "no node of the Ray cluster has that much",
        "0 GPUs",
    ),
    case(
        "sweep-ray-not-installed",
        [*SWEEP, "--executor", "ray"],
        "pip install 'dlrun[ray]'",
        setup=without_ray,
        env={"PYTHONPATH": "no-ray"},
    ),
    # sweep: the space
    case("sweep-empty-range", [*SWEEP, "seed=range(5,1)"], "seed=range(5,1) is empty"),
    case(
        "sweep-empty-range-max-group",
        [*SWEEP, "seed=range(5,1)", "--max-group", "2"],
        "seed=range(5,1) is empty",
    ),
    case(
        "sweep-reversed-interval",
        [*SWEEP, "lr=interval(1e-1,1e-4)", "--trials", "2"],
        "lr=interval(1e-1,1e-4)",
        "interval(0.0001,0.1)",
    ),
    case(
        "sweep-log-interval-from-zero",
        [*SWEEP, "lr=interval(0,1)", "--trials", "2"],
        "needs a positive start, got 0",
    ),
    case("sweep-interval-without-trials", [*SWEEP, "lr=interval(1e-4,1e-1)"], "add --trials N"),
    case(
        "sweep-trials-nothing-swept",
        [*SWEEP, "--trials", "3"],
        "--trials 3 needs a swept key",
        "lr='interval(1e-4,1e-1)'",
    ),
    case("sweep-trials-zero", [*SWEEP, "lr=0.1,0.01", "--trials", "0"], "--trials must be >= 1, got 0"),
    case("sweep-trials-not-a-number", [*SWEEP, "--trials", "abc"], "'--trials'", "got 'abc'"),
    case("sweep-jobs-zero", [*SWEEP, "--jobs", "0"], "--jobs must be >= 1, got 0"),
    case("sweep-max-group-zero", [*SWEEP, "--max-group", "0"], "--max-group must be >= 1, got 0"),
    case("sweep-glob-on-a-number", [*SWEEP, "lr=glob(*)"], "glob() works on", "not 'lr'"),
    case("sweep-glob-matches-nothing", [*SWEEP, "activation=glob(zz*)"], "glob(zz*) matches no"),
    case("sweep-delete-key", [*SWEEP, "~lr"], "'~lr' deletes a key"),
    case("sweep-double-equals", [*SWEEP, "lr==1"], "cannot parse 'lr==1'", "write key=value"),
    case("sweep-no-key", [*SWEEP, "=1"], "'=1' has no key"),
    case("sweep-bad-value", [*SWEEP, "lr=0.1,fast"], "lr=fast is not a valid float", "trial 1"),
    case("sweep-interpolation", [*SWEEP, "lr=0.1,${oc.env:HOME}"], "holds an interpolation"),
    case("sweep-hydra-sweep-dir", [*SWEEP, "hydra.sweep.dir=x"], "sets Hydra's runtime"),
    case(
        "sweep-name-climbs-out",
        [*SWEEP, "--name", "../x"],
        "--name ../x cannot name the run's folder",
        "runs/sweeps/",
    ),
    case("sweep-nan-value", [*SWEEP, "lr=0.1,nan"], "lr=nan is not a finite number"),
    case("sweep-unknown-model", [*SWEEP, "model=mlp,foo"], "unknown model 'foo'"),
    case("sweep-unknown-experiment", ["sweep", "experiment=nope"], "unknown experiment 'nope'"),
    case(
        "sweep-two-experiments",
        ["sweep", "experiment=init", "experiment=optimizers"],
        "one experiment at a time",
    ),
    case("sweep-variant-without-study", [*SWEEP, "variant=x"], "'variant=x'", "no experiment="),
    case(
        "sweep-variant-of-study-without",
        ["sweep", "experiment=init", "variant=x"],
        "experiment=init has none",
    ),
    case(
        "sweep-unknown-variant",
        ["sweep", "experiment=regularisation", "variant=nope"],
        "unknown variant 'nope'",
        "dropout",
    ),
    # sweep: adaptive search (Optuna)
    case(
        "sweep-unknown-sampler",
        [*SWEEP, "lr=interval(1e-3,1)", "--search", "bayes", "--trials", "2"],
        "unknown --search 'bayes'",
        "grid, random, tpe, cmaes, qmc, nsga2, pbt",
    ),
    case(
        "sweep-unknown-pruner",
        [*SWEEP, "lr=interval(1e-3,1)", "--search", "tpe", "--trials", "2", "--pruner", "asha"],
        "unknown --pruner 'asha'",
        "hyperband",
    ),
    case(
        "sweep-tpe-without-trials",
        [*SWEEP, "lr=interval(1e-3,1)", "--search", "tpe"],
        "--search tpe needs a budget: add --trials N",
    ),
    case(
        "sweep-glob-in-a-sampler-space",
        [*SWEEP, "init=glob(he_*)", "--search", "tpe", "--trials", "2"],
        "init=glob(he_*): glob() is grid-only",
        "init=choice(he_uniform,he_normal)",
    ),
    case(
        "sweep-pruner-without-sampler",
        [*SWEEP, "lr=interval(1e-3,1)", "--trials", "2", "--pruner", "median"],
        "--pruner needs an adaptive search",
    ),
    case(
        "sweep-unreachable-storage",
        [
            *SWEEP,
            "lr=interval(1e-3,1)",
            "--search",
            "tpe",
            "--trials",
            "2",
            "--storage",
            "postgresql://nobody@127.0.0.1:9/db",
            "--out",
            "s",
        ],
        "cannot open --storage postgresql://nobody@127.0.0.1:9/db",
    ),
    case(
        "sweep-study-with-another-space",
        [
            *SWEEP,
            "lr=interval(1e-3,1)",
            "model.dropout=interval(0,0.5)",
            "--search",
            "tpe",
            "--trials",
            "2",
            "--storage",
            "sqlite:///other.db",
            "--study",
            "s",
            "--out",
            "s",
        ],
        "study 's' exists with another space",
        setup=a_study_of_lr_alone,
    ),
    # report options (on a minimal run folder)
    case("report-no-such-folder", ["report", "nope"], "no such folder: nope"),
    case(
        "report-unknown-format",
        ["report", "run", "--format", "xyz"],
        "unknown --format 'xyz'",
        setup=a_train_run,
    ),
    case("report-top-zero", ["report", "run", "--top", "0"], "--top must be >= 1, got 0", setup=a_train_run),
    case("report-top-not-a-number", ["report", "run", "--top", "x"], "got 'x'", setup=a_train_run),
    case(
        "report-unknown-sort",
        ["report", "run", "--sort", "colour"],
        "unknown --sort column 'colour'",
        setup=a_train_run,
    ),
    case(
        "report-unknown-group-by",
        ["report", "run", "--group-by", "colour"],
        "unknown --group-by column 'colour'",
        setup=a_train_run,
    ),
    case("report-filter-syntax", ["report", "run", "--filter", "("], "bad --filter '('", setup=a_train_run),
    case(
        "report-filter-dotted-name",
        ["report", "run", "--filter", "optim.lr > 0.1"],
        "unknown column 'optim.lr'",
        setup=a_train_run,
    ),
    case(
        "report-threshold-unknown",
        ["report", "run", "--threshold", "foo=1"],
        "unknown threshold 'foo'",
        setup=a_train_run,
    ),
    case(
        "report-threshold-not-a-number",
        ["report", "run", "--threshold", "overfit_rise=abc"],
        "'overfit_rise' must be a number, got 'abc'",
        setup=a_train_run,
    ),
    case(
        "report-threshold-no-equals",
        ["report", "run", "--threshold", "nonsense"],
        "'nonsense' must look like name=value",
        setup=a_train_run,
    ),
    case(
        "report-threshold-zero-window",
        ["report", "run", "--threshold", "window=0"],
        "'window' must be a finite number >= 1, got '0'",
        setup=a_train_run,
    ),
    case(
        "report-threshold-nan",
        ["report", "run", "--threshold", "overfit_rise=nan"],
        "'overfit_rise' must be a finite number",
        setup=a_train_run,
    ),
]


def snapshot(folder):
    """Every path under `folder` with the bytes of each file: a refusal must change none."""
    return {path: path.read_bytes() if path.is_file() else None for path in folder.rglob("*")}


@pytest.mark.parametrize("args, fragments, setup, env", CASES)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    args, fragments, setup, env, tmp_path, tmp_path_factory
):
    if setup:
        setup(tmp_path)
    before = snapshot(tmp_path)
    environment = {
        **os.environ,
        "COLUMNS": "200",
        "DLRUN_DATA_DIR": str(SHARED_DATA),
        "DLRUN_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "DLRUN_MNIST_MIRRORS": "http://127.0.0.1:9/",
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for fragment in fragments:
        assert fragment in lines[0]
    assert snapshot(tmp_path) == before
