"""The built wheel carries the configs and studies, and works installed outside the checkout."""

import json
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Only what a build reads: a stale build/ or egg-info in the checkout could mask a missing file.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "README.md", "dlrun", "conf", "experiments")


def _run(*args, cwd, check=True):
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a clean copy of the sources, as `pip wheel .` does for a user.

    pip fetches the build backend (setuptools, as pyproject.toml asks) the way the editable
    install did: from its cache or the configured index.
    """
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", source, "--no-deps", "-w", out, cwd=out)
    (built,) = out.glob("dlrun-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable); returns its bin/ folder.

    The dependencies come from this interpreter's site-packages through a .pth line, so nothing
    is downloaded. The editable install's finder lives in a .pth file of that folder, and .pth
    files in a folder reached by a .pth line are not processed, so the checkout stays hidden.
    """
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv
    ).stdout.strip()
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")} | set(site.getsitepackages())
    Path(purelib, "dlrun-test-deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=venv
    )
    return venv / "bin"


def test_wheel_holds_every_config_and_study(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "dlrun/conf/config.yaml" in names
    for group in ("model", "data", "optim", "schedule", "preset"):
        options = sorted((ROOT / "conf" / group).glob("*.yaml"))
        assert options, group
        for path in options:
            assert f"dlrun/conf/{group}/{path.name}" in names
    studies = sorted((ROOT / "experiments").glob("*.yaml"))
    assert len(studies) >= 10
    for path in studies:
        assert f"dlrun/experiments/{path.name}" in names
    assert "dlrun/experiments/README.md" in names
    # the worked example is a user's project, run from a checkout (docs/own-code-example.md)
    assert not [name for name in names if "own_code" in name]


def test_installed_wheel_runs_from_another_folder(installed, tmp_path):
    where = _run(installed / "python", "-c", "import dlrun; print(dlrun.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent), where.stdout
    listed = _run(installed / "dlrun", "list", cwd=tmp_path).stdout
    assert "lenet" in listed and "warmup_cosine" in listed and "regularisation" in listed
    shown = _run(installed / "dlrun", "config", "show", "model=lenet", cwd=tmp_path).stdout
    assert "name: lenet" in shown
    _run(
        installed / "dlrun", "train", "data=xor", "model.hidden=[4]", "epochs=1", "--out", "run", cwd=tmp_path
    )
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
