"""Every study in experiments/ runs (reduced where needed) and shows its conclusion in numbers."""

import json

import pandas as pd
import pytest
from conftest import needs_mnist
from rich.console import Console

from dlrun import api
from dlrun.errors import ConfigError
from dlrun.report.build import build_report
from dlrun.report.ensemble import ensembles
from dlrun.sweep import executor, experiments, folder, pretrain
from dlrun.sweep.plan import make_plan


@pytest.mark.parametrize("name", experiments.list_experiments())
def test_every_study_plans_and_says_what_it_shows(name):
    # a study over intervals is a search: it needs a budget of trials
    plan = make_plan([f"experiment={name}"], trials=4 if name == "search" else None)
    assert len(plan.trials) >= 2
    assert len(experiments.load_experiment(name).summary) > 40


def test_there_are_the_seventeen_studies_of_the_lessons():
    assert set(experiments.list_experiments()) == {
        "activations",
        "init",
        "learning_rate",
        "batch_size_lr",
        "optimizers",
        "regularisation",
        "depth_vs_width",
        "nonlinear_data",
        "mlp_vs_cnn",
        "ensemble",
        "search",
        "architectures",
        "skip_connections",
        "transfer",
        "what_cnns_see",
        "upsampling",
        "denoising",
    }


def test_command_line_overrides_win_and_variants_expand():
    plan = make_plan(["experiment=regularisation", "epochs=3", "variant=none,dropout"])
    assert {t.cfg.epochs for t in plan.trials} == {3}
    assert [t.params["variant"] for t in plan.trials] == ["none", "dropout"]
    assert plan.trials[1].cfg.model.dropout == 0.5


def test_one_variant_alone_runs_and_an_unknown_one_is_refused():
    plan = make_plan(["experiment=regularisation", "variant=dropout"])
    assert [t.params["variant"] for t in plan.trials] == ["dropout"]
    with pytest.raises(ConfigError, match="unknown variant 'foo' \\(choose from: none, l2"):
        make_plan(["experiment=regularisation", "variant=foo"])


def test_unknown_study_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown experiment 'nope' \\(choose from: activations"):
        make_plan(["experiment=nope"])


def run_study(tmp_path, name, *extra):
    plan = make_plan([f"experiment={name}", *extra])
    out = tmp_path / name
    folder.prepare_folder(out, plan, name)
    pretrain.run_stage(plan, [f"experiment={name}", *extra], out, Console(stderr=True))
    executor.run_plan(plan, out)
    built = build_report([out])
    swept = list(plan.trials[0].params)
    params = pd.DataFrame([{"run": t.id, **t.params} for t in plan.trials])
    rows = built.rows.drop(columns=[c for c in swept if c in built.rows]).merge(params, on="run")
    return rows.set_index(swept if len(swept) > 1 else swept[0]), built


@pytest.mark.slow
def test_nonlinear_data_a_line_cannot_separate_but_an_mlp_can(tmp_path):
    rows, _ = run_study(tmp_path, "nonlinear_data")
    for (data, hidden), row in rows.iterrows():
        if hidden == "[]":
            assert row.test_accuracy < 0.75, (data, row.test_accuracy)
        else:
            assert row.test_accuracy > 0.9, (data, row.test_accuracy)


@pytest.mark.slow
@needs_mnist
def test_init_zeros_and_constant_do_not_learn_variance_preserving_ones_do(tmp_path):
    rows, _ = run_study(tmp_path, "init", "data.subset=5000", "epochs=4")
    acc = rows.test_accuracy
    assert acc["zeros"] < 0.2 and acc["constant"] < 0.2
    # std 1 blows the activations up: diverged, or far behind
    assert rows.diagnosis["normal"] == "diverged" or acc["normal"] < acc["he_normal"] - 0.2
    for scheme in ("lecun_normal", "glorot_uniform", "he_normal"):
        assert acc[scheme] > 0.85
    assert rows.diagnosis["zeros"] == "no_learning"


@pytest.mark.slow
@needs_mnist
def test_activations_sigmoid_gradients_vanish_relu_trains(tmp_path):
    rows, built = run_study(tmp_path, "activations", "data.subset=5000", "epochs=3")
    ratio = {}
    for activation, row in rows.iterrows():
        metrics = pd.read_csv(f"{row.folder}/metrics.csv").iloc[-1]
        ratio[activation] = metrics.grad_norm_hidden1 / metrics.grad_norm_output
    assert ratio["sigmoid"] < 0.1 * ratio["relu"]
    assert rows.test_accuracy["sigmoid"] < 0.3 and rows.test_accuracy["relu"] > 0.8


@pytest.mark.slow
@needs_mnist
def test_learning_rate_too_low_underfits_too_high_diverges(tmp_path):
    rows, _ = run_study(tmp_path, "learning_rate", "data.subset=5000", "epochs=3")
    rows.index = rows.index.astype(float)  # the swept values as typed: '1e-5' -> 1e-05
    assert rows.diagnosis[10.0] == "diverged"
    assert rows.test_accuracy[1e-5] < 0.3
    assert rows.test_accuracy.idxmax() in (1e-2, 1e-1, 1.0)
    assert rows.test_accuracy.max() > 0.85


@pytest.mark.slow
@needs_mnist
def test_batch_size_must_be_adapted_with_the_lr(tmp_path):
    rows, _ = run_study(tmp_path, "batch_size_lr", "data.subset=5000", "epochs=3")
    acc = {(batch, scaling): row.test_accuracy for (batch, scaling), row in rows.iterrows()}
    assert acc[("1024", "none")] < acc[("16", "none")] - 0.05  # the naive conclusion
    assert acc[("1024", "linear")] > acc[("1024", "none")] + 0.05  # the right one


@pytest.mark.slow
@needs_mnist
def test_optimizers_momentum_and_adaptive_beat_plain_sgd(tmp_path):
    rows, _ = run_study(tmp_path, "optimizers", "data.subset=5000", "epochs=3")
    acc = rows.test_accuracy
    for name in ("momentum", "nesterov", "adam", "adamw", "rmsprop"):
        assert acc[name] > acc["sgd"], name


@pytest.mark.slow
@needs_mnist
def test_regularisation_big_mlp_overfits_and_remedies_help(tmp_path):
    rows, _ = run_study(tmp_path, "regularisation")
    assert rows.diagnosis["none"] == "overfitting" and rows.gap["none"] > 0.05
    assert rows.gap["augmentation"] < rows.gap["none"] / 1.5  # more (shifted) data narrows the gap
    assert rows.test_accuracy["augmentation"] > rows.test_accuracy["none"]
    assert rows.epochs_run["early_stopping"] < 40 / 2  # same accuracy class, a fraction of the cost


@pytest.mark.slow
def test_depth_beats_width_at_an_equal_weight_budget(tmp_path):
    rows, _ = run_study(tmp_path, "depth_vs_width")
    loss = rows.reset_index().groupby("model.hidden").test_loss.mean()
    assert loss["[15,14,14]"] < loss["[125]"] and loss["[20,20]"] < loss["[125]"]


@pytest.mark.slow
@needs_mnist
def test_lenet_beats_the_mlp_with_fewer_weights(tmp_path):
    rows, _ = run_study(tmp_path, "mlp_vs_cnn", "data.subset=5000", "epochs=4")
    summaries = {
        name: pd.read_json(f"{row.folder}/summary.json", typ="series") for name, row in rows.iterrows()
    }
    assert summaries["lenet"]["params"] < summaries["mlp"]["params"] / 5
    assert rows.test_accuracy["lenet"] > rows.test_accuracy["mlp"]


@pytest.mark.slow
@needs_mnist
def test_an_ensemble_of_seeds_votes_better_than_its_average_member(tmp_path):
    rows, built = run_study(tmp_path, "ensemble", "epochs=3")
    votes = ensembles(built.rows, built.varying)
    assert len(votes) == 1 and votes.members.iloc[0] == 5
    assert votes.mean_probability_vote.iloc[0] > votes.member_mean.iloc[0]
    assert votes.majority_vote.iloc[0] >= votes.member_mean.iloc[0]


def search_arm(tmp_path, seed: int, *search) -> pd.DataFrame:
    from typer.testing import CliRunner

    from dlrun.cli import app

    out = tmp_path / f"{'-'.join(search)}-{seed}"
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "experiment=search",
            "--trials",
            str(SEARCH_TRIALS),
            "--search-seed",
            str(seed),
            *search,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "trials.csv")


SEARCH_TRIALS = 16


@pytest.mark.slow
def test_search_tpe_is_at_least_random_and_hyperband_spends_a_fraction(tmp_path):
    """Equal budget (16 trials of 9 epochs), mean over 2 seeds, as experiments/search.yaml
    says (~4 min on a busy 2-core CPU)."""
    best, spent = {}, {}
    for arm in (
        ["--search", "random"],
        ["--search", "tpe", "--batch", "4"],
        ["--search", "tpe", "--batch", "4", "--pruner", "hyperband"],
    ):
        runs = [search_arm(tmp_path, seed, *arm) for seed in (0, 1)]
        name = arm[1] + (" hyperband" if "hyperband" in arm else "")
        best[name] = sum(run.best_val_accuracy.max() for run in runs) / len(runs)
        spent[name] = sum(run.epochs_run.sum() for run in runs) / len(runs)
    assert best["tpe"] >= best["random"], best
    # measured: 0.72 of the trial-epochs, best 96.9 % against TPE's 99.5 % (one seed of two
    # lost a late bloomer): the saving is asserted, the accuracy only not to collapse
    assert spent["tpe hyperband"] <= 0.8 * spent["tpe"], spent
    assert best["tpe hyperband"] >= 0.9, best


def test_the_transfer_study_pretrains_on_other_classes_with_only_the_fixed_overrides():
    stage = pretrain.stage_overrides(
        ["experiment=transfer", "epochs=5", "data.per_class=10", "variant=head", "data.val_size=500"]
    )
    assert stage[:4] == ["model=lenet", "data=mnist", "data.classes=[0,1,2,3,4]", "epochs=3"]
    assert stage[4:] == ["data.val_size=500"]  # epochs: its own; per_class: swept; variant: the trials'
    plan = make_plan(["experiment=transfer"])  # its trials wait for the pre-trained run
    assert {t.cfg.init_from for t in plan.trials} == {pretrain.PRETRAINED, None}
    assert len(plan.groups) == 8  # per_class x variants: each freezes other layers, or starts elsewhere


@pytest.mark.slow
@needs_mnist
def test_lenet_a_small_vgg_and_a_small_resnet_learn_mnist_and_global_pooling_alone_lags(tmp_path):
    rows, _ = run_study(tmp_path, "architectures", "data.subset=3000", "epochs=3")
    summaries = {
        name: pd.read_json(f"{row.folder}/summary.json", typ="series") for name, row in rows.iterrows()
    }
    params = {name: summary["params"] for name, summary in summaries.items()}
    assert params["vgg"] > params["resnet"] > params["lenet"] > params["cnn"]
    accuracy = rows.test_accuracy
    # measured on this reduced run: lenet 91.2%, resnet 85.8%, vgg 85.2%, cnn 37.5%
    assert accuracy["lenet"] > 0.88 and accuracy["vgg"] > 0.8 and accuracy["resnet"] > 0.8
    # two 3x3 conv layers averaged over the map, no dense head: far behind after the same epochs
    assert accuracy["cnn"] < min(accuracy["lenet"], accuracy["vgg"], accuracy["resnet"]) - 0.1


@pytest.mark.slow
@needs_mnist
def test_skip_connections_the_plain_deep_net_trains_worse(tmp_path):
    rows, _ = run_study(tmp_path, "skip_connections")
    final = {
        (str(skip).lower(), str(seed)): pd.read_csv(f"{row.folder}/metrics.csv").train_loss.iloc[-1]
        for (skip, seed), row in rows.iterrows()
    }
    for seed in ("0", "1"):
        # the training loss, not the test's: the plain net is harder to optimise, not overfitting.
        # Measured 1.59 vs 0.96 (seed 0) and 1.49 vs 0.82 (seed 1): 1.25x leaves a margin.
        assert final["false", seed] > 1.25 * final["true", seed], (seed, final)


@pytest.mark.slow
@needs_mnist
def test_transfer_with_few_labels_beats_training_from_scratch(tmp_path):
    rows, _ = run_study(tmp_path, "transfer", "data.per_class=10")
    acc = rows.test_accuracy
    # measured: head 74.1%, frozen_convs 88.6%, fine_tune 89.3%, scratch 87.2% (README)
    assert max(acc["fine_tune"], acc["frozen_convs"]) > acc["scratch"], dict(acc)
    assert acc["head"] < acc["frozen_convs"] - 0.05  # fc2's features were made for digits 0-4
    source = tmp_path / "transfer" / "pretrain"
    assert json.loads((source / "summary.json").read_text())["test_accuracy"] > 0.95
    head = json.loads(open(f"{rows.folder['head']}/summary.json").read())
    assert head["init_from"]["source"] == str(source.absolute())
    assert head["init_from"]["reinitialised"] == ["output"]  # digits 5-9: a new head


@pytest.mark.slow
@needs_mnist
def test_denoising_beats_the_noisy_input_by_decibels(tmp_path):
    rows, _ = run_study(tmp_path, "denoising")
    for noise, row in rows.iterrows():
        summary = pd.read_json(f"{row.folder}/summary.json", typ="series")
        # measured gains 3.3-7.3 dB over seeds 0-2 (experiments/denoising.yaml)
        assert summary.test_psnr > summary.test_psnr_noisy_input + 2, (noise, dict(summary))


@pytest.mark.slow
@needs_mnist
def test_upsampling_nearest_leaves_less_checkerboard_than_transposed_convs(tmp_path):
    rows = run_study(tmp_path, "upsampling")[0].reset_index()
    energy = {
        (row.variant, str(row.seed)): api.inspect(row.folder, ["checkerboard"]).checkerboard["energy"]
        for row in rows.itertuples()
    }
    mean = lambda variant: sum(v for (name, _), v in energy.items() if name == variant) / 3
    # measured means: transposed_k3 0.39, transposed_k4 0.43, nearest 0.047 (the yaml's table);
    # k3 against k4 is not asserted: a trained kernel 4 sums its phases unevenly too
    assert mean("nearest") < 0.3 * min(mean("transposed_k3"), mean("transposed_k4")), energy
    for seed in ("0", "1", "2"):
        assert energy["nearest", seed] < energy["transposed_k3", seed], energy
    for row in rows.itertuples():
        summary = pd.read_json(f"{row.folder}/summary.json", typ="series")
        assert summary.test_psnr > summary.test_psnr_noisy_input + 2, (row.variant, row.seed)
