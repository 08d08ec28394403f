"""Tests of dlrun/data/download.py with the CIFAR-10 and Fashion-MNIST readers (data/cifar10.py,
data/mnist.py), for real against a local HTTP server serving small files the tests build in the
official formats; the tests vouch for them through a DLRUN_DATA_MD5 manifest, as a user would."""

import gzip
import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
from test_data import serve  # one local HTTP server for every download test
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data import DataError, cifar10, load, mnist

NOWHERE = "http://127.0.0.1:9/"  # port 9 (discard) is closed: connections fail at once
PER_BATCH, N_TEST = 20, 30
ARCHIVE = "cifar-10-python.tar.gz"


@pytest.fixture(autouse=True)
def private_env(monkeypatch, tmp_path):
    monkeypatch.delenv("DLRUN_DATA_DIR", raising=False)
    monkeypatch.delenv("DLRUN_DATA_MD5", raising=False)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLRUN_DATA_MIRROR", NOWHERE)


def cifar_batch(rng, n):
    # As the official batches: rows of 3072 bytes (R plane, G plane, B plane), labels a list.
    return {
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in np.arange(n) % 10],
    }


def write_cifar_archive(path, seed=0):
    """Write a tiny archive laid out as the official one; return its batches."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": cifar_batch(rng, PER_BATCH) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(rng, N_TEST)
    batches["batches.meta"] = {b"label_names": [n.encode() for n in cifar10.CLASS_NAMES]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in batches.items():
            raw = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return batches


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def vouch(monkeypatch, tmp_path, entries):
    """Write a DLRUN_DATA_MD5 manifest ({dataset/file: md5}) and point dlrun at it."""
    manifest = tmp_path / "MD5SUMS"
    manifest.write_text("".join(f"{digest}  {name}\n" for name, digest in entries.items()))
    monkeypatch.setenv("DLRUN_DATA_MD5", str(manifest))


def train(out, *overrides):
    return CliRunner().invoke(
        app,
        [
            "train",
            "data=cifar10",
            "model=mlp",
            "model.hidden=[16]",
            "data.val_size=20",
            "batch_size=10",
            "epochs=1",
            *overrides,
            "--out",
            str(out),
        ],
    )


def error_line(result):
    """The CLI's error: one line, the last (after the run's header line)."""
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output
    return lines[-1]


def test_cifar_download_trains_end_to_end_with_crops_and_flips(monkeypatch, tmp_path):
    served = tmp_path / "served"
    write_cifar_archive(served / "cifar10" / ARCHIVE)
    vouch(monkeypatch, tmp_path, {f"cifar10/{ARCHIVE}": md5(served / "cifar10" / ARCHIVE)})
    with serve(served) as url:
        monkeypatch.setenv("DLRUN_DATA_MIRROR", url)
        result = train(tmp_path / "run", "augment.shift=4", "augment.flip=true")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (5 * PER_BATCH - 20, 20, N_TEST)
    assert summary["class_names"] == list(cifar10.CLASS_NAMES)
    cached = tmp_path / "cache" / "cifar10"
    assert [p.name for p in cached.iterdir()] == [ARCHIVE]
    assert md5(cached / ARCHIVE) == md5(served / "cifar10" / ARCHIVE)


def test_cifar_images_are_nhwc_uint8_from_the_planes(monkeypatch, tmp_path):
    data_dir = tmp_path / "data"
    batches = write_cifar_archive(data_dir / "cifar10" / ARCHIVE, seed=3)
    vouch(monkeypatch, tmp_path, {f"cifar10/{ARCHIVE}": md5(data_dir / "cifar10" / ARCHIVE)})
    monkeypatch.setenv("DLRUN_DATA_DIR", str(data_dir))  # and the mirror is NOWHERE: no network
    x_pool, y_pool, x_test, y_test = cifar10.arrays(None)
    assert x_pool.shape == (5 * PER_BATCH, 32, 32, 3) and x_pool.dtype == np.uint8
    row = batches["data_batch_2"][b"data"][7]
    image = x_pool[PER_BATCH + 7]
    for r, c, ch in [(0, 0, 0), (5, 17, 1), (31, 2, 2)]:
        assert image[r, c, ch] == row[ch * 1024 + r * 32 + c]
    np.testing.assert_array_equal(y_test, np.arange(N_TEST) % 10)
    ds = load(dict_cfg(classes=[9, 0], per_class=3, val_size=4))
    assert ds.x_train.dtype == np.uint8 and np.bincount(ds.y_train).tolist() == [3, 3]
    assert ds.spec.class_names == ("truck", "airplane")
    assert not (tmp_path / "cache").exists()


def dict_cfg(**overrides):
    from types import SimpleNamespace

    fields = dict(
        name="cifar10", subset=None, val_size=20, scaling="standardize", seed=0, classes=None, per_class=None
    )
    return SimpleNamespace(**{**fields, **overrides})


def test_corrupt_download_is_one_line_exit_2_and_leaves_nothing(monkeypatch, tmp_path):
    served = tmp_path / "served"
    write_cifar_archive(served / "cifar10" / ARCHIVE)
    # no manifest: the official checksum applies, and a different file fails it
    with serve(served) as url:
        monkeypatch.setenv("DLRUN_DATA_MIRROR", url)
        result = train(tmp_path / "run")
    assert result.exit_code == 2
    line = error_line(result)
    assert f"{url}cifar10/{ARCHIVE}: checksum mismatch" in line
    assert f"expected {cifar10.MD5}" in line and "DLRUN_DATA_DIR" in line
    assert list((tmp_path / "cache" / "cifar10").iterdir()) == []
    assert not (tmp_path / "run").exists()


def test_server_down_is_one_line_exit_2(tmp_path):
    result = train(tmp_path / "run")
    assert result.exit_code == 2
    line = error_line(result)
    assert f"{NOWHERE}cifar10/{ARCHIVE}" in line and "DLRUN_DATA_DIR" in line
    assert list((tmp_path / "cache" / "cifar10").iterdir()) == []


def test_missing_file_on_the_mirror_reports_the_http_status(monkeypatch, tmp_path):
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as url:
        monkeypatch.setenv("DLRUN_DATA_MIRROR", url)
        with pytest.raises(DataError, match=f"{url}cifar10/{ARCHIVE}: HTTP 404"):
            cifar10.arrays(None)


def test_truncated_archive_is_a_one_line_error(monkeypatch, tmp_path):
    path = tmp_path / "data" / "cifar10" / ARCHIVE
    write_cifar_archive(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    vouch(monkeypatch, tmp_path, {f"cifar10/{ARCHIVE}": md5(path)})
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="cannot be read.*delete it") as info:
        cifar10.arrays(None)
    assert "\n" not in str(info.value)


def test_local_file_is_checked_against_the_official_checksum(monkeypatch, tmp_path):
    path = tmp_path / "data" / "cifar10" / ARCHIVE
    write_cifar_archive(path)
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match=f"at {path} has checksum mismatch"):
        cifar10.arrays(None)


def write_idx_gz(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_fashion_mnist_downloads_and_reads_with_the_mnist_reader(monkeypatch, tmp_path):
    served = tmp_path / "served" / "fashion_mnist"
    served.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(40) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(10, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx_gz(served / name, array)
    vouch(monkeypatch, tmp_path, {f"fashion_mnist/{n}": md5(served / n) for n in arrays})
    with serve(served.parent) as url:
        monkeypatch.setenv("DLRUN_DATA_MIRROR", url)
        ds = load(dict_cfg(name="fashion_mnist", val_size=2, classes=[9, 5]))
    assert ds.spec.class_names == ("Ankle boot", "Sandal") and ds.x_test.shape == (2, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_test[:, :, :, 0], arrays["t10k-images-idx3-ubyte.gz"][[5, 9]])
    np.testing.assert_array_equal(ds.y_test, [1, 0])
    assert sorted(p.name for p in (tmp_path / "cache" / "fashion_mnist").iterdir()) == sorted(arrays)
    assert list(mnist.FASHION_FILES) == list(arrays)
