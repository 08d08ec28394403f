"""A folder of the user's images (dlrun/data/images.py): `data=image_folder`, in both layouts,
grey and rgb, trained through the real CLI on class-coloured PNGs generated here; decoded once and
read back from the cache; each bad folder refused in one line naming it, exit 2, nothing written.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.data import describe, images, load

runner = CliRunner()
# One colour per class: a net tells them apart in a few steps, and a solid image's pixels (noise=0)
# are known exactly after any resize.
COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))
SMALL = ["data=image_folder", "data.path=pics", "data.size=[16,12]", "data.val_size=6", "data.test_size=6"]
TRAIN = ["model=cnn", "model.channels=[4]", "model.dense=[]", "epochs=4", "batch_size=8", "lr=0.01"]


def write_images(folder: Path, per_class=12, noise=20, size=(20, 24), names=("cat", "dog", "emu")):
    """per_class PNGs (height x width = size) of each class's colour, with seeded uniform noise."""
    rng = np.random.default_rng(0)
    for name, colour in zip(names, COLOURS):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.array(colour) + rng.integers(-noise, noise + 1, size=(*size, 3))
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / name / f"{i:03d}.png")


def folder_digest(root: Path) -> str:
    """The digest docs and data/images.py define, computed here from the files alone."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png"), key=lambda p: p.relative_to(root).as_posix()):
        data = path.read_bytes()
        digest.update(
            path.relative_to(root).as_posix().encode() + b"\0" + len(data).to_bytes(8, "big") + data
        )
    return digest.hexdigest()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """The working folder; the cache is its sibling, tmp_path/cache."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # relative data.path resolves from here, as from a shell
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "work"


def data_cfg(*overrides):
    return compose_config([*SMALL, "batch_size=8", *overrides]).data


def cache_entries(root: Path) -> list[Path]:
    return sorted((root / "cache" / "image_folder").glob("*.npz"))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One real `python -m dlrun train` on a folder of class folders, in its own process."""
    root = tmp_path_factory.mktemp("cli")
    write_images(root / "pics")
    command = [sys.executable, "-m", "dlrun", "train", *TRAIN, *SMALL, "--out", "run"]
    env = {**os.environ, "DLRUN_CACHE_DIR": str(root / "cache")}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root, json.loads((root / "run" / "summary.json").read_text())


def test_a_folder_of_class_folders_trains_through_the_cli_and_records_its_digest(cli_run):
    root, summary = cli_run
    assert (summary["task"], summary["class_names"]) == ("classification", ["cat", "dog", "emu"])
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (24, 6, 6)
    assert summary["params"] == (3 * 3 * 3 * 4 + 4) + (8 * 6 * 4 * 3 + 3)  # 16x12 pooled to 8x6
    assert summary["test_accuracy"] > 0.9  # chance is 1/3
    assert summary["data_source"] == {"path": str(root / "pics"), "sha256": folder_digest(root / "pics")}
    assert len(cache_entries(root)) == 1


def test_a_second_process_reads_the_cache_instead_of_decoding(cli_run, monkeypatch):
    root, _ = cli_run
    monkeypatch.chdir(root)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(root / "cache"))
    (entry,) = cache_entries(root)
    before, decoded = entry.stat(), images.decoded_images
    spec = describe(data_cfg())  # this process has not read the folder: only the cache can serve it
    assert images.decoded_images == decoded
    after = entry.stat()  # an entry written again is a new file (an atomic rename)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (spec.n_train, spec.input_shape) == (24, (16, 12, 3))


def test_a_damaged_cache_entry_is_decoded_again_and_a_changed_image_is_new_content(folder):
    write_images(folder / "pics")
    listing = images.list_images(folder / "pics", "pics")
    first, digest = images.read(listing, (16, 12), "rgb")
    (entry,) = cache_entries(folder.parent)
    entry.write_bytes(b"not an npz")
    decoded = images.decoded_images
    again, same = images.read(listing, (16, 12), "rgb")
    assert images.decoded_images == decoded + 36 and same == digest
    assert all(np.array_equal(first["train"][i], again["train"][i]) for i in (0, 1))
    assert np.load(entry)["x_train"].shape == (36, 16, 12, 3)  # replaced by a good one
    Image.new("RGB", (24, 20), COLOURS[1]).save(folder / "pics" / "cat" / "000.png")
    _, changed = images.read(listing, (16, 12), "rgb")
    assert changed != digest and len(cache_entries(folder.parent)) == 2


@pytest.mark.parametrize(
    "color, channels, pixel",
    [
        ("rgb", 3, list(COLOURS[2])),
        # Pillow's L is ITU-R 601-2 luma: R*299/1000 + G*587/1000 + B*114/1000, rounded
        ("grey", 1, [round(30 * 0.299 + 30 * 0.587 + 200 * 0.114)]),
    ],
)
def test_solid_images_decode_to_their_colour_in_grey_and_rgb(folder, color, channels, pixel):
    write_images(folder / "pics", noise=0)
    ds = load(data_cfg(f"data.color={color}", "data.scaling=none"))
    assert ds.spec.input_shape == (16, 12, channels) and ds.x_train.dtype == np.uint8
    emu = ds.x_train[ds.y_train == 2]
    assert len(emu) == 8 and (emu == np.array(pixel, np.uint8)).all()


def test_split_folders_are_used_as_given_and_a_missing_test_split_is_carved(folder):
    for split, count in (("train", 10), ("val", 4), ("test", 3)):
        write_images(folder / "pics" / split, per_class=count)
    spec = describe(data_cfg())
    assert (spec.n_train, spec.n_val, spec.n_test, spec.class_names) == (30, 12, 9, ("cat", "dog", "emu"))
    shutil.rmtree(folder / "pics" / "test")
    spec = describe(data_cfg("data.classes=[2,0]"))
    assert (spec.n_train, spec.n_val, spec.n_test, spec.class_names) == (14, 8, 6, ("emu", "cat"))


def _class_folders():
    write_images(Path("pics"))


def _with(make, *extra):
    def both():
        make()
        for path, data in extra:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(data)

    return both


def _splits(val_names=("cat", "dog", "emu"), extra=()):
    def make():
        write_images(Path("pics/train"))
        write_images(Path("pics/val"), per_class=2, names=val_names)
        for name in extra:
            Path("pics", name).mkdir()

    return make


def _truncated():
    _class_folders()
    Path("pics/emu/005.png").write_bytes(Path("pics/emu/004.png").read_bytes()[:90])


BAD = [
    ("missing-folder", lambda: None, ["data.path=gone"], "gone: cannot read it (No such file or directory)"),
    ("no-path", lambda: None, ["data.path=???"], "data=image_folder needs data.path=DIR, a folder"),
    ("a-file", _with(lambda: None, ("pics", b"x")), [], "pics: is a file, not a folder of class folders"),
    ("no-class-folders", _with(lambda: None, ("pics/a.png", b"x")), [], "pics: has no class folders"),
    ("empty-class", _with(_class_folders, ("pics/fox/notes.txt", b"x")), [], "pics/fox: holds no images"),
    ("one-class", lambda: write_images(Path("pics"), names=("cat",)), [], "pics: has one class folder (cat)"),
    (
        "not-an-image",
        _with(_class_folders, ("pics/dog/bad.png", b"not a png")),
        [],
        "pics/dog/bad.png: is not an image Pillow can read",
    ),
    (
        "truncated",
        _truncated,
        [],
        "pics/emu/005.png: is a damaged image",
    ),
    (
        "too-few",
        _class_folders,
        ["data.test_size=40"],
        "pics: the 36 examples are too few for data.test_size=40",
    ),
    ("val-lacks-a-class", _splits(val_names=("cat", "dog")), [], "pics/val: lacks class folder emu"),
    ("classes-beside-train", _splits(extra=("fox",)), [], "pics: holds train/ and also fox/"),
    ("bad-size", _class_folders, ["data.size=[16]"], "data.size=[16] must be [height, width]"),
    ("bad-class", _class_folders, ["data.classes=[0,3]"], "data.classes: 3 is not a class of image_folder"),
]


@pytest.mark.parametrize("make, args, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_folder_is_one_line_naming_it_exit_2_and_nothing_written(folder, make, args, message):
    make()
    before = sorted(folder.rglob("*"))
    result = runner.invoke(app, ["train", *TRAIN, *SMALL, *args, "--out", "run"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in lines[0], result.output
    assert message in lines[0]
    assert sorted(folder.rglob("*")) == before
