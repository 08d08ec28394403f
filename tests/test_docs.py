"""The manual is checked: every `dlrun` command in README.md and docs/*.md runs, shrunk onto small
data, or is marked in the page as not run (`# not run: <why>`); the site builds with --strict."""

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 8192  # a newcomer's five minutes; the rest is the docs site

FENCE = re.compile(r"^```(\w*)")
MARKER = re.compile(r"#\s*not run:\s*(\S.*)$")
SETUP_RUN = ".venv/bin/dlrun "  # the set-up line's last step, after `pip install -e .`

# Small enough to take seconds, big enough that training means something; val_size is taken from
# the training pool, so it must shrink with the subset.
MNIST = ("data.subset=600", "data.val_size=200", "epochs=1")
TRIALS = ("--trials", "2")


@dataclass(frozen=True)
class Command:
    text: str  # as the page writes it, comment dropped, whitespace collapsed
    page: str
    not_run: str | None  # why, when the page marks it


def _code_part(line: str) -> tuple[str, str]:
    """Split a shell line into its command and its trailing comment (a `#` outside quotes)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i:]
    return line, ""


def _shell_lines(text: str):
    """Lines of the ```bash and ```console blocks, continuation lines joined."""
    language, pending = None, ""
    for line in text.splitlines():
        fence = FENCE.match(line.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language not in ("bash", "console"):
            continue
        code, comment = _code_part(line)
        if code.rstrip().endswith("\\"):
            pending += code.rstrip()[:-1] + " "
            continue
        yield (pending + code).strip(), comment
        pending = ""


def documented_commands() -> list[Command]:
    found = []
    for page in PAGES:
        for code, comment in _shell_lines(page.read_text()):
            code = code.removeprefix("$ ")
            if SETUP_RUN in code:
                code = "dlrun " + code.split(SETUP_RUN, 1)[1]
            if not code.startswith("dlrun "):
                continue
            marker = MARKER.search(comment)
            text = " ".join(code.split())
            found.append(Command(text, page.relative_to(ROOT).as_posix(), marker and marker.group(1)))
    return found


runner = CliRunner()


def dlrun(command: str, *extra: str):
    """Run a documented command in-process (JAX imported once), with the test's shrinking overrides
    appended: a later override or option wins over the page's."""
    result = runner.invoke(app, [*shlex.split(command)[1:], *extra])
    assert result.exit_code == 0, f"{command} {' '.join(extra)}\n{result.output}"
    return result.output


def summary(folder) -> dict:
    return json.loads((Path(folder) / "summary.json").read_text())


def trials(folder) -> pd.DataFrame:
    return pd.read_csv(Path(folder) / "trials.csv")


def completed(folder) -> bool:
    return summary(folder)["status"] == "completed"


def latest(pattern: str) -> Path:
    return sorted(Path().glob(pattern))[-1]


# Each scenario runs its commands in order in one fresh folder: those that share a run folder
# (train, then resume; sweep, then report and export) are one scenario. Every entry is
# (command exactly as documented, shrinking arguments, a check on (output) in that folder).
PRINT_ONLY = [
    ("dlrun list", (), lambda out: "lenet" in out and "61,706" in out and "transfer" in out),
    ("dlrun config show model=lenet", (), lambda out: "name: lenet" in out),
    ("dlrun config show model=lenet optim=adamw", (), lambda out: "weight_decay" in out),
    (
        "dlrun config show model=cnn model.channels=[16,32] optim=adamw schedule=warmup_cosine",
        (),
        lambda out: "warmup_epochs" in out and "- 16" in out,
    ),
    (
        "dlrun sweep lr=0.1,0.01,0.001 seed=0,1,2 --dry-run",
        (),
        lambda out: "90 trial-epochs" in out and "g001" not in out and not Path("runs").exists(),
    ),
    (
        "dlrun sweep batch_size=32,128,512 activation=relu,tanh --dry-run",
        (),
        lambda out: "g005" in out and "g006" not in out,
    ),
    (
        "dlrun sweep init='glob(he_*)' activation=relu,tanh --dry-run",
        (),
        lambda out: "varied" in out and "init" in out,
    ),
]

SMALL = {
    "spirals": [
        (
            "dlrun train data=spirals model.hidden=[64,64] epochs=50 --out runs/spirals",
            ("epochs=2",),
            lambda out: summary("runs/spirals")["epochs_run"] == 2,
        ),
        (  # the same command again leaves the finished run alone
            "dlrun train data=spirals model.hidden=[64,64] epochs=50 --out runs/spirals",
            ("epochs=2",),
            lambda out: summary("runs/spirals")["epochs_run"] == 2,
        ),
        (
            "dlrun train --resume runs/spirals epochs=80",
            ("epochs=3",),
            lambda out: summary("runs/spirals")["epochs_run"] == 3 and completed("runs/spirals"),
        ),
    ],
    "study": [
        (
            "dlrun sweep lr=0.1,0.01 seed=0,1 --out runs/study",
            MNIST,
            lambda out: (trials("runs/study").status == "completed").sum() == 4,
        ),
        (
            "dlrun sweep lr=0.1,0.01 seed=0,1 --out runs/study",
            MNIST,
            lambda out: "4 of 4 trials already finished" in out,
        ),
        ("dlrun watch runs/study", (), lambda out: "grid sweep, ended: runs/study" in out),
        ("dlrun report runs/study --watch", (), lambda out: "4 trials: 4 completed" in out),
        (
            "dlrun report runs/study --sort best_val_accuracy --top 10 --filter 'status == \"completed\"'",
            (),
            lambda out: "4 runs" in out,
        ),
        ("dlrun report runs/study --group-by lr", (), lambda out: "±" in out),
        (
            "dlrun report runs/study --format markdown --threshold overfit_rise=0.2",
            (),
            lambda out: "\n| " in out and "best_val_accuracy" in out and "overfit_rise" not in out,
        ),
        (
            "dlrun report runs/study --plot --format html -o runs/study/report.html",
            (),
            lambda out: "<svg" in Path("runs/study/report.html").read_text(),
        ),
        (  # an ended sweep: written once, complete, without the reload
            "dlrun report runs/study --format html -o runs/study/report.html --watch",
            (),
            lambda out: (
                "wrote runs/study/report.html" in out
                and "http-equiv" not in Path("runs/study/report.html").read_text()
            ),
        ),
        (
            "dlrun export runs/study --to tensorboard tb",
            (),
            lambda out: any(Path("tb").rglob("events.out.tfevents.*")),
        ),
        ("dlrun export runs/study --to mlflow", (), lambda out: Path("mlruns").is_dir()),
    ],
    "loggers": [
        (
            "dlrun sweep data=moons model.hidden=[8] epochs=3 lr=0.1,0.01 --out runs/live logger=tensorboard",
            (),
            lambda out: len(list(Path("runs/live").rglob("events.out.tfevents.*"))) == 3,
        ),
        (
            "dlrun sweep data=moons model.hidden=[8] epochs=3 lr=0.1,0.01 --out runs/live2 "
            "'logger=[tensorboard,mlflow]'",
            (),
            lambda out: Path("mlruns").is_dir() and any(Path("runs/live2").rglob("events.out.tfevents.*")),
        ),
    ],
}

# Each of these takes 10-50 s on a busy 2-core CPU (MNIST programs compile for seconds each, LeNet,
# the conv stacks and VGG for tens of seconds), so they run with -m slow, as CI does.
SLOW = {
    "studies": [
        (
            "dlrun sweep experiment=init",
            MNIST,
            lambda out: len(trials(latest("runs/sweeps/*/*"))) == 6,
        ),
        ("dlrun report", (), lambda out: "6 runs" in out),
    ],
    "reports": [
        (
            "dlrun sweep data=spirals model.hidden=[64,64] epochs=30 batch_size=32 schedule=constant "
            "lr=10,0.3,0.03,0.003,0.0003,0.00001 --name lr-study",
            ("epochs=2",),
            lambda out: len(trials(latest("runs/sweeps/lr-study/*"))) == 6,
        ),
        ("dlrun report --sort best_val_loss", (), lambda out: "6 runs from" in out),
        (
            "dlrun sweep data=spirals model.hidden=[64,64] epochs=20 batch_size=32 "
            "lr=0.3,0.03,0.003,0.0003 seed=0,1 --out runs/lr-seed",
            ("epochs=2",),
            lambda out: len(trials("runs/lr-seed")) == 8,
        ),
        (
            "dlrun report runs/lr-seed --format html -o runs/lr-seed/report.html",
            (),
            lambda out: "<svg" in Path("runs/lr-seed/report.html").read_text(),
        ),
    ],
    "search": [
        (
            "dlrun sweep lr='interval(1e-4,1)' model.dropout='interval(0,0.5)' --search tpe --trials 64",
            (*MNIST, *TRIALS),
            lambda out: len(trials(latest("runs/sweeps/sweep/*"))) == 2,
        ),
        (
            "dlrun sweep lr='interval(1e-4,1)' --search tpe --trials 64 --pruner hyperband --min-epochs 1",
            (*MNIST, "epochs=2", *TRIALS),
            lambda out: (latest("runs/sweeps/sweep/*") / "study.db").exists(),
        ),
        (
            "dlrun sweep lr='interval(1e-4,1)' --search cmaes --trials 16 --metric best_val_loss "
            "--out runs/search",
            (*MNIST, *TRIALS),
            lambda out: Path("runs/search/study.db").exists() and len(trials("runs/search")) == 2,
        ),
        (
            "dlrun sweep lr='interval(1e-4,1)' --search tpe --trials 32 --pruner hyperband --out runs/tpe",
            (*MNIST, *TRIALS),
            lambda out: len(trials("runs/tpe")) == 2,
        ),
        (
            "dlrun report runs/tpe --plot --format html -o runs/tpe/report.html",
            (),
            lambda out: "<svg" in Path("runs/tpe/report.html").read_text(),
        ),
    ],
    "pareto": [
        (
            "dlrun sweep model.hidden='choice([16],[64],[256])' lr='interval(1e-3,1e-1)' --search nsga2 "
            "--trials 64 --metric best_val_accuracy,params --out runs/pareto",
            (*MNIST, *TRIALS),
            lambda out: len(trials("runs/pareto")) == 2 and trials("runs/pareto")["params"].notna().all(),
        ),
        ("dlrun report runs/pareto", (), lambda out: "Pareto front:" in out),
    ],
    "grid": [
        (
            "dlrun sweep lr=0.1,0.01,0.001 seed=0,1,2",
            MNIST,
            lambda out: len(trials(latest("runs/sweeps/sweep/*"))) == 9,
        ),
        (
            "dlrun sweep model=mlp data.subset=2000 epochs=5 lr=1,0.1,0.01,0.001,0.0001 --out runs/lr-study",
            MNIST,
            lambda out: len(trials("runs/lr-study")) == 5,
        ),
        (
            "dlrun report runs/lr-study --sort best_val_loss",
            (),
            lambda out: "5 runs from runs/lr-study" in out and "diagnosis" in out,
        ),
        (
            "dlrun sweep lr='interval(1e-4,1e-1)' optim.l2='interval(1e-6,1e-3)' --trials 8",
            (*MNIST, *TRIALS),
            lambda out: len(trials(latest("runs/sweeps/sweep/*"))) == 2,
        ),
    ],
    "mlp": [
        (
            "dlrun train model=mlp lr=0.01 batch_size=64 init=he_normal activation=tanh optim=momentum "
            "epochs=20",
            MNIST,
            lambda out: completed(latest("runs/mlp-mnist/*")),
        ),
        (
            "dlrun train model=mlp lr=0.01 optim=momentum epochs=20 --out runs/mlp",
            MNIST,
            lambda out: completed("runs/mlp"),
        ),
        (
            "dlrun train --resume runs/mlp epochs=30",
            ("epochs=2",),
            lambda out: summary("runs/mlp")["epochs_run"] == 2,
        ),
    ],
    "lenet": [
        (
            "dlrun train model=lenet",
            MNIST,
            lambda out: summary(latest("runs/lenet-mnist/*"))["params"] == 61706,
        ),
        (
            "dlrun train model=lenet preset=gpu",
            ("data.subset=1200", "data.val_size=200", "epochs=2"),  # batch 512, one epoch of warmup
            lambda out: summary(latest("runs/lenet-mnist/*"))["config"]["batch_size"] == 512,
        ),
        (
            "dlrun sweep model=lenet lr='interval(1e-4,1e-1)' --trials 32",
            (*MNIST, *TRIALS),
            lambda out: len(trials(latest("runs/sweeps/sweep/*"))) == 2,
        ),
        (
            "dlrun train model=cnn model.channels=[32,64] model.kernel=3 model.padding=1 model.pool=max",
            MNIST,
            lambda out: completed(latest("runs/cnn-mnist/*")),
        ),
        (
            "dlrun train model=vgg model.depth=16 model.batch_norm=true",
            MNIST,
            lambda out: completed(latest("runs/vgg-mnist/*")),
        ),
    ],
    "autoencoder": [
        (
            "dlrun train model=autoencoder data.scaling=unit lr=0.01 --out runs/ae",
            MNIST,
            lambda out: summary("runs/ae")["test_psnr"] > 0 and "test_psnr" in out,
        ),
        (
            "dlrun train model=autoencoder data=mnist augment.noise_std=0.5 task=denoise --out runs/denoise",
            MNIST,
            # std 0.5 of standardised MNIST pixels (their std is 0.31 of full scale): about 16 dB
            lambda out: 15 < summary("runs/denoise")["test_psnr_noisy_input"] < 17.5,
        ),
        ("dlrun report runs/ae", (), lambda out: "test PSNR" in out and "val acc" not in out),
        (
            "dlrun sweep model=autoencoder model.upsample=transposed,nearest,bilinear model.kernel=3,4 "
            "--dry-run",
            (),
            lambda out: "6 trials" in out and "6 groups" in out,
        ),
    ],
    "transfer": [
        (
            "dlrun train model=lenet data=mnist data.classes=[0,1,2,3,4] --out runs/pre",
            ("data.per_class=40", "data.val_size=200", "epochs=1"),
            lambda out: completed("runs/pre"),
        ),
        (
            "dlrun train model=lenet data.classes=[5,6,7,8,9] data.per_class=100 --init-from runs/pre "
            "model.trainable=head",
            ("data.per_class=30", "data.val_size=200", "epochs=1", "--out", "runs/head"),
            lambda out: "conv1" in summary("runs/head")["init_from"]["loaded"],
        ),
        (
            "dlrun sweep model=lenet data.classes=[5,6,7,8,9] data.per_class=100 --init-from runs/pre "
            "model.trainable=head,last2,all",
            ("data.per_class=30", "data.val_size=200", "epochs=1", "--out", "runs/compare"),
            lambda out: (trials("runs/compare").status == "completed").sum() == 3,
        ),
    ],
}

OWN_MODEL = "model=user model._target_=nets.WideMLP +model.width=64 +model.depth=2"
SLOW["own-model"] = [
    (f"dlrun train {OWN_MODEL} --out runs/wide", MNIST, lambda out: completed("runs/wide")),
    (
        f"dlrun sweep {OWN_MODEL} lr=0.1,0.01 seed=0,1 --out runs/wide-lr",
        MNIST,
        lambda out: (trials("runs/wide-lr").status == "completed").sum() == 4 and "in 1 group" in out,
    ),
    (
        "dlrun sweep model=user model._target_=nets.WideMLP +model.width=32,64 +model.depth=2 --dry-run",
        (),
        lambda out: "in 2 groups" in out,
    ),
    (
        "dlrun train model=mlp data=loader data._target_=loaders.shells +data.n=2000 --out runs/shells",
        ("epochs=1",),
        lambda out: completed("runs/shells"),
    ),
]

SCENARIOS = {"print-only": PRINT_ONLY, **SMALL, **SLOW}


def _page_files(page: str) -> None:
    """Write the files a page shows in ```python blocks opening with `# <file name>`, into the
    working directory: the page's own module is what its commands run."""
    for block in re.findall(r"```python\n# (\S+\.py)\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S):
        Path(block[0]).write_text(block[1])


PREPARE = {"own-model": lambda: _page_files("your-own-model.md")}


def test_the_readme_fits_a_newcomers_five_minutes():
    assert len((ROOT / "README.md").read_bytes()) <= README_LIMIT


def test_every_documented_command_is_run_here_or_marked_with_why():
    commands = documented_commands()
    unmarked = {c.text for c in commands if c.not_run is None}
    run = {command for steps in SCENARIOS.values() for command, _, _ in steps}
    assert unmarked - run == set(), "documented but neither run by a test nor marked '# not run: why'"
    assert run - unmarked == set(), "run by a test but no longer documented (or marked not run)"
    # the set-up line's own command is among them, taken from after `pip install -e .`
    assert Command("dlrun train model=lenet", "README.md", None) in commands


def test_the_extractor_reads_markers_continuations_and_quoted_hashes():
    page = (
        "```bash\n$ dlrun report --filter 'a == \"#x\"'   # kept\n"
        "dlrun sweep a=1 \\\n    b=2   # not run: needs a cluster\n"
        "pip install dlrun\n```\n```\ndlrun list\n```\n"
    )
    lines = [(" ".join(code.split()), MARKER.search(comment)) for code, comment in _shell_lines(page)]
    assert [(code, m and m.group(1)) for code, m in lines] == [
        ("$ dlrun report --filter 'a == \"#x\"'", None),
        ("dlrun sweep a=1 b=2", "needs a cluster"),
        ("pip install dlrun", None),
    ]


def _run_scenario(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    PREPARE.get(name, lambda: None)()
    for command, extra, check in SCENARIOS[name]:
        output = dlrun(command, *extra)
        assert check(output), f"{command} {' '.join(extra)}: its check failed\n{output}"


def test_the_print_only_commands_run(tmp_path, monkeypatch):
    _run_scenario("print-only", tmp_path, monkeypatch)


@needs_mnist
@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_documented_commands_run_shrunk(name, tmp_path, monkeypatch):
    _run_scenario(name, tmp_path, monkeypatch)


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("name", sorted(SLOW))
def test_the_documented_training_commands_run_shrunk(name, tmp_path, monkeypatch):
    _run_scenario(name, tmp_path, monkeypatch)


def test_the_docs_site_builds_strict_with_no_broken_link_or_anchor(tmp_path):
    # Not --quiet: it drops the warnings that --strict counts, and a broken anchor would pass.
    done = subprocess.run(
        [str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "getting-started" / "index.html").exists()
