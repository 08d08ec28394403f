"""Groups of one shape in one process share their compiled program (an adaptive search's
rounds, a sweep split by --max-group): the second compiles nothing and trains the same."""

import numpy as np

from dlrun import results
from dlrun.config.load import compose_config
from dlrun.training import program
from dlrun.training.group import run_group

BASE = [
    "data=moons",
    "data.n_samples=600",
    "data.val_size=100",
    "model.hidden=[16]",
    "epochs=2",
    "optim=momentum",
]
COLUMNS = ["train_loss", "val_loss", "val_accuracy", "grad_norm"]


def train(tmp_path, name: str, extra: list, lrs=(0.1, 0.03)) -> tuple:
    dirs = [tmp_path / name / f"t{i}" for i in range(len(lrs))]
    summaries = run_group([compose_config([*BASE, *extra, f"lr={lr}"]) for lr in lrs], dirs)
    return summaries, [results.read_metrics(d)[COLUMNS].to_numpy() for d in dirs]


def test_a_second_group_of_one_shape_reuses_the_program_and_trains_the_same(tmp_path):
    program._PROGRAMS.clear()
    first, _ = train(tmp_path, "first", [])
    assert all(s["compile_time_s"] > 0 for s in first)
    second, curves = train(tmp_path, "second", ["seed=3"])  # seed is a trial key: same shape
    assert all(s["compile_time_s"] == 0 for s in second)

    program._PROGRAMS.clear()  # the same group compiled afresh trains exactly alike
    fresh, expected = train(tmp_path, "fresh", ["seed=3"])
    assert all(s["compile_time_s"] > 0 for s in fresh)
    for got, want in zip(curves, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)

    other, _ = train(tmp_path, "wider", ["model.hidden=[24]"])  # another shape compiles
    assert all(s["compile_time_s"] > 0 for s in other)
    smaller, _ = train(tmp_path, "three", [], lrs=(0.1, 0.03, 0.01))  # so does another size
    assert all(s["compile_time_s"] > 0 for s in smaller)


def test_the_kept_programs_are_bounded(tmp_path):
    program._PROGRAMS.clear()
    for width in range(4, 4 + program.KEPT_PROGRAMS + 2):
        train(tmp_path, f"w{width}", [f"model.hidden=[{width}]", "epochs=1"], lrs=(0.1, 0.2))
    assert len(program._PROGRAMS) == program.KEPT_PROGRAMS
