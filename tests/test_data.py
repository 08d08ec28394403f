"""Tests of dlrun/data: the registry, describe() and load() (split, subset, scaling) of
dlrun/data/__init__.py, then MNIST's files, checksums and downloads (data/mnist.py, against a
local HTTP server), then the seven generated sets (data/generated.py)."""

import functools
import gzip
import hashlib
import shutil
import threading
import types
import urllib.request
from collections import Counter
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from dlrun.data import DATASETS, DataError, describe, generated, load, mnist

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
# a user's file (npz, csv) has neither fixed sizes nor generated ones: tests/test_data_files.py;
# the generated images (data=patches) have their own: tests/test_patches.py
GENERATED = [
    name
    for name in DATASETS
    if DATASETS[name].fixed_sizes is None
    and not DATASETS[name].prepare
    and len(DATASETS[name].input_shape) == 1
]
CLASSIFIERS = [name for name in GENERATED if DATASETS[name].task == "classification"]
# Port 9 (discard) is closed on any sane machine: connections fail at once.
NOWHERE = "http://127.0.0.1:9/"


def make_cfg(name="mnist", **overrides):
    generated = name in GENERATED
    fields = dict(
        name=name,
        subset=None,
        val_size=500 if generated else 5000,
        n_samples=2000,
        n_test=400,
        noise=0.0,
        classes=3 if generated else None,
        per_class=None,
        scaling="standardize",
        target_scaling="standardize",
        seed=0,
    )
    fields.update(overrides)
    return types.SimpleNamespace(**fields)


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    """Every test starts with no data dir, a private cache and no reachable mirror."""
    monkeypatch.delenv("DLRUN_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLRUN_MNIST_MIRRORS", NOWHERE)


@pytest.fixture
def mnist_files():
    """The shared official MNIST folder, for serving or copying."""
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"no MNIST files at {SHARED_MNIST}: the tests read the shared official copy")
    return SHARED_MNIST


@pytest.fixture
def mnist_env(monkeypatch, mnist_files):
    monkeypatch.setenv("DLRUN_DATA_DIR", str(mnist_files.parent))
    return mnist_files


@pytest.fixture(scope="module")
def mnist_default():
    """The default MNIST load, shared by read-only tests because it is the slow one."""
    if not SHARED_MNIST.is_dir():
        pytest.fail(f"no MNIST files at {SHARED_MNIST}: the tests read the shared official copy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLRUN_DATA_DIR", str(SHARED_MNIST.parent))
        mp.setenv("DLRUN_MNIST_MIRRORS", NOWHERE)
        return load(make_cfg())


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def serve(directory):
    """Serve `directory` over HTTP on a random local port; yield its base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval keeps shutdown() from costing half a second per server.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def gunzip_md5(path):
    with gzip.open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim])
    dims = np.array(array.shape, dtype=">u4").tobytes()
    return header + dims + array.tobytes()


def rows(x):
    return [row.tobytes() for row in x.reshape(len(x), -1)]


def test_mnist_default_shapes_and_sizes(mnist_default):
    ds = mnist_default
    assert ds.spec == describe(make_cfg())
    assert (ds.spec.n_train, ds.spec.n_val, ds.spec.n_test) == (55000, 5000, 10000)
    assert ds.spec.task == "classification" and ds.spec.num_classes == 10
    assert ds.spec.input_shape == (28, 28, 1)
    for x, y, n in (
        (ds.x_train, ds.y_train, 55000),
        (ds.x_val, ds.y_val, 5000),
        (ds.x_test, ds.y_test, 10000),
    ):
        assert x.shape == (n, 28, 28, 1) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int32
        assert set(np.unique(y)) == set(range(10))


def test_mnist_split_partitions_the_official_pool(mnist_default):
    with gzip.open(SHARED_MNIST / "train-images-idx3-ubyte.gz", "rb") as f:
        pool = mnist.parse_idx(f.read())
    ds = mnist_default
    assert Counter(rows(ds.x_train) + rows(ds.x_val)) == Counter(rows(pool))


def test_mnist_test_set_is_t10k_in_order(mnist_default):
    with gzip.open(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        labels = mnist.parse_idx(f.read())
    np.testing.assert_array_equal(mnist_default.y_test, labels)


def test_mnist_standardize_gives_zero_mean_unit_std(mnist_env):
    ds = load(make_cfg(subset=5000))
    z = (ds.x_train.astype(np.float32) - ds.x_offset) * ds.x_scale
    assert abs(float(z.mean())) < 1e-4
    assert float(z.std()) == pytest.approx(1.0, abs=1e-4)
    assert 20 < ds.x_offset < 50


@pytest.mark.parametrize("scaling, offset, scale", [("unit", 0.0, 1 / 255), ("none", 0.0, 1.0)])
def test_mnist_other_scalings(mnist_env, scaling, offset, scale):
    ds = load(make_cfg(subset=100, scaling=scaling))
    assert ds.x_train.dtype == np.uint8
    assert (ds.x_offset, ds.x_scale) == pytest.approx((offset, scale))


def test_mnist_subset_takes_first_of_train_part(mnist_env):
    full, small = load(make_cfg(val_size=1000)), load(make_cfg(val_size=1000, subset=300))
    assert small.spec.n_train == len(small.x_train) == len(small.y_train) == 300
    assert describe(make_cfg(val_size=1000, subset=300)).n_train == 300
    np.testing.assert_array_equal(small.x_train, full.x_train[:300])
    np.testing.assert_array_equal(small.y_val, full.y_val)
    assert describe(make_cfg(subset=10**6)).n_train == 55000


def test_mnist_split_is_deterministic_in_the_seed(mnist_env):
    a, b = load(make_cfg(subset=200, seed=1)), load(make_cfg(subset=200, seed=1))
    c = load(make_cfg(subset=200, seed=2))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_val, c.y_val)
    assert not np.array_equal(a.x_train, c.x_train)


def test_describe_touches_no_files(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DLRUN_DATA_DIR", str(empty))

    def forbidden(*args, **kwargs):
        raise AssertionError("describe() must not read or download data")

    monkeypatch.setattr(gzip, "open", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    spec = describe(make_cfg(subset=1000))
    assert (spec.n_train, spec.n_val, spec.n_test) == (1000, 5000, 10000)
    assert list(empty.iterdir()) == [] and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (dict(subset=0), "subset=0"),
        (dict(subset=-5), "subset=-5"),
        (dict(val_size=-1), "val_size=-1"),
        (dict(val_size=60000), "val_size=60000"),
        (dict(name="xor", val_size=2000), "val_size=2000"),
        (dict(name="xor", n_test=0), "n_test=0"),
        (dict(name="xor", n_samples=0), "n_samples=0"),
        (dict(name="xor", noise=-0.1), "noise=-0.1"),
        (dict(name="blobs", classes=1), "classes=1"),
        (dict(scaling="minmax"), "minmax"),
        (dict(target_scaling="unit"), "target_scaling='unit'"),
        (dict(seed=1.5), "seed=1.5"),
        (dict(subset=True), "subset=True"),
    ],
)
def test_describe_rejects_bad_values(overrides, needle):
    with pytest.raises(DataError) as info:
        describe(make_cfg(**overrides))
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_unknown_name_lists_choices():
    with pytest.raises(DataError) as info:
        describe(make_cfg(name="cifar"))
    message = str(info.value)
    assert message == f"unknown data 'cifar' (choose from: {', '.join(sorted(DATASETS))})"


def test_missing_field_is_a_data_error():
    cfg = make_cfg(name="xor")
    del cfg.noise
    with pytest.raises(DataError, match="noise"):
        describe(cfg)


def test_describe_accepts_omegaconf():
    omegaconf = pytest.importorskip("omegaconf")
    cfg = omegaconf.OmegaConf.create(vars(make_cfg(name="blobs", classes=5)))
    spec = describe(cfg)
    assert spec.num_classes == 5 and spec.n_train == 1500


def test_parse_idx_roundtrip_and_big_endian():
    small = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(mnist.parse_idx(idx_bytes(small)), small)
    ints = np.array([1, -2, 70000], dtype=">i4")
    parsed = mnist.parse_idx(idx_bytes(ints, 0x0C))
    assert parsed.dtype.isnative
    np.testing.assert_array_equal(parsed, [1, -2, 70000])


@pytest.mark.parametrize(
    "raw, needle",
    [
        (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "magic"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05", "magic"),
        (b"", "magic"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated"),
        (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x05", "size"),
    ],
)
def test_parse_idx_rejects_bad_data(raw, needle):
    with pytest.raises(DataError, match=needle):
        mnist.parse_idx(raw)


def test_local_checksum_mismatch_names_the_file(mnist_env, monkeypatch, tmp_path):
    bad_dir = tmp_path / "data" / "mnist"
    bad_dir.mkdir(parents=True)
    for name in mnist.MNIST_FILES:
        shutil.copy(mnist_env / name, bad_dir / name)
    raw = bytearray(gzip.decompress((bad_dir / "train-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    (bad_dir / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv("DLRUN_DATA_DIR", str(bad_dir.parent))
    with pytest.raises(DataError, match="'train-labels-idx1-ubyte.gz'.*checksum"):
        load(make_cfg(subset=10))


def test_local_file_that_is_not_gzip(mnist_env, monkeypatch, tmp_path):
    bad_dir = tmp_path / "data" / "mnist"
    bad_dir.mkdir(parents=True)
    (bad_dir / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    monkeypatch.setenv("DLRUN_DATA_DIR", str(bad_dir.parent))
    with pytest.raises(DataError, match="'train-images-idx3-ubyte.gz'.*gzip"):
        load(make_cfg(subset=10))


def assert_cache_holds_verified_files(cache):
    assert sorted(p.name for p in cache.iterdir()) == sorted(mnist.MNIST_FILES)
    for name, md5 in mnist.MNIST_FILES.items():
        assert gunzip_md5(cache / name) == md5


def test_download_from_mirror_into_cache(mnist_files, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    (empty / "mnist").mkdir(parents=True)
    monkeypatch.setenv("DLRUN_DATA_DIR", str(empty))
    with serve(mnist_files) as url:
        monkeypatch.setenv("DLRUN_MNIST_MIRRORS", url)
        ds = load(make_cfg(subset=100))
    assert ds.x_train.shape == (100, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert_cache_holds_verified_files(tmp_path / "cache" / "mnist")
    monkeypatch.setenv("DLRUN_MNIST_MIRRORS", NOWHERE)
    np.testing.assert_array_equal(load(make_cfg(subset=100)).x_train, ds.x_train)


def test_download_skips_corrupt_mirror_and_uses_xdg_cache(mnist_files, monkeypatch, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in mnist.MNIST_FILES:
        # A valid gzip of the wrong bytes: only the checksum can catch it.
        (corrupt / name).write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    monkeypatch.delenv("DLRUN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with serve(corrupt) as bad_url, serve(mnist_files) as good_url:
        monkeypatch.setenv("DLRUN_MNIST_MIRRORS", f"{bad_url}, {NOWHERE},{good_url}")
        ds = load(make_cfg(subset=50))
    assert len(ds.x_train) == 50
    assert_cache_holds_verified_files(tmp_path / "xdg" / "dlrun" / "mnist")


def test_corrupt_mirror_alone_leaves_nothing_behind(monkeypatch, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"wrong"))
    with serve(corrupt) as url:
        monkeypatch.setenv("DLRUN_MNIST_MIRRORS", url)
        with pytest.raises(DataError, match="checksum mismatch") as info:
            load(make_cfg())
    assert "'train-images-idx3-ubyte.gz'" in str(info.value)
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_no_reachable_mirror_names_the_file(tmp_path):
    with pytest.raises(DataError) as info:
        load(make_cfg())
    message = str(info.value)
    assert "'train-images-idx3-ubyte.gz'" in message
    assert "DLRUN_DATA_DIR" in message and str(tmp_path / "cache" / "mnist") in message
    assert "\n" not in message
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_missing_file_on_mirror_reports_http_status(monkeypatch, tmp_path):
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as url:
        monkeypatch.setenv("DLRUN_MNIST_MIRRORS", url)
        with pytest.raises(DataError, match="HTTP 404"):
            load(make_cfg())


@pytest.mark.parametrize("name", GENERATED)
def test_generated_sets_have_declared_shapes(name):
    cfg = make_cfg(name, noise=0.1)
    ds, spec = load(cfg), describe(cfg)
    assert ds.spec == spec
    assert (spec.n_train, spec.n_val, spec.n_test) == (1500, 500, 400)
    for x, y, n in ((ds.x_train, ds.y_train, 1500), (ds.x_val, ds.y_val, 500), (ds.x_test, ds.y_test, 400)):
        assert x.shape == (n, *spec.input_shape) and x.dtype == np.float32
        if spec.task == "classification":
            assert y.shape == (n,) and y.dtype == np.int32
        else:
            assert y.shape == (n, 1) and y.dtype == np.float32
    assert (ds.x_offset, ds.x_scale) == (0.0, 1.0)


@pytest.mark.parametrize("name", GENERATED)
def test_generated_sets_are_deterministic_and_disjoint(name):
    a, b, c = (
        load(make_cfg(name, noise=0.1)),
        load(make_cfg(name, noise=0.1)),
        load(make_cfg(name, noise=0.1, seed=1)),
    )
    for split in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, split), getattr(b, split))
    assert not np.array_equal(a.x_train, c.x_train)
    train = set(rows(a.x_train))
    assert not train & set(rows(a.x_val)) and not train & set(rows(a.x_test))


def test_generated_subset():
    full, small = load(make_cfg("moons")), load(make_cfg("moons", subset=100))
    assert len(small.x_train) == small.spec.n_train == 100
    np.testing.assert_array_equal(small.y_val, full.y_val)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_generated_classes_are_balanced(name):
    ds = load(make_cfg(name, classes=4, noise=0.1))
    k = ds.spec.num_classes
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_val]), minlength=k)
    assert len(counts) == k
    assert counts.min() > 0.8 * 2000 / k and counts.max() < 1.2 * 2000 / k


def test_xor_labels_follow_quadrants():
    ds = load(make_cfg("xor", scaling="none"))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert np.abs(x).max() <= 1.0
        np.testing.assert_array_equal(y, (x[:, 0] * x[:, 1] < 0).astype(np.int32))


def test_circles_radii():
    ds = load(make_cfg("circles", scaling="none"))
    radius = np.linalg.norm(ds.x_train, axis=1)
    np.testing.assert_allclose(radius[ds.y_train == 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(radius[ds.y_train == 1], 0.5, atol=1e-5)


def test_moons_shape():
    ds = load(make_cfg("moons", scaling="none"))
    upper = ds.x_train[ds.y_train == 0]
    lower = ds.x_train[ds.y_train == 1] - np.array([1.0, 0.5], dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(lower, axis=1), 1.0, atol=1e-5)
    assert upper[:, 1].min() >= 0 and lower[:, 1].max() <= 1e-6


def test_spirals_arms_mirror_each_other():
    ds = load(make_cfg("spirals", scaling="none", n_samples=4000))
    x, y = ds.x_train, ds.y_train
    assert np.linalg.norm(x, axis=1).max() <= 1.0 + 1e-6
    # Noise-free, each arm is r -> r(cos 3 pi r, sin 3 pi r), the other its negation.
    r = np.linalg.norm(x, axis=1)
    arm = np.where(y[:, None] == 0, x, -x)
    expected = r[:, None] * np.stack([np.cos(3 * np.pi * r), np.sin(3 * np.pi * r)], axis=1)
    np.testing.assert_allclose(arm, expected, atol=1e-5)


def test_blobs_cluster_around_their_centres():
    ds = load(make_cfg("blobs", classes=5, scaling="none", n_samples=5000, noise=0.7))
    assert ds.spec.num_classes == 5 and set(np.unique(ds.y_train)) == set(range(5))
    for k, centre in enumerate(generated.blob_centres(5)):
        members = ds.x_train[ds.y_train == k]
        np.testing.assert_allclose(members.mean(axis=0), centre, atol=0.15)
        assert members.std(axis=0) == pytest.approx([0.7, 0.7], abs=0.07)


def test_rosenbrock_targets_match_formula():
    ds = load(make_cfg("rosenbrock", scaling="none", target_scaling="none"))
    assert ds.spec.task == "regression" and ds.spec.num_classes == 0
    assert ds.spec.targets_nonnegative
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 2
    x = ds.x_train.astype(np.float64)
    z = 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2
    np.testing.assert_allclose(ds.y_train[:, 0], z, rtol=1e-6)
    assert ds.y_train.min() >= 0 and (ds.y_offset, ds.y_scale) == (0.0, 1.0)


def test_poly1d_targets_match_formula():
    ds = load(make_cfg("poly1d", scaling="none", target_scaling="none"))
    assert ds.spec.input_shape == (1,) and not ds.spec.targets_nonnegative
    x = ds.x_test[:, 0].astype(np.float64)
    assert np.abs(x).max() <= 1
    np.testing.assert_allclose(ds.y_test[:, 0], 2 * x**3 - x**2 - x + 0.5, rtol=1e-6, atol=1e-7)


def test_regression_noise_is_added_to_targets():
    clean = load(make_cfg("poly1d", target_scaling="none"))
    noisy = load(make_cfg("poly1d", target_scaling="none", noise=0.2))
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    assert np.std(noisy.y_train - clean.y_train) == pytest.approx(0.2, rel=0.1)


@pytest.mark.parametrize("name", ["rosenbrock", "poly1d"])
def test_target_standardization_uses_train_stats(name):
    raw = load(make_cfg(name, target_scaling="none"))
    scaled = load(make_cfg(name, target_scaling="standardize"))
    assert float(scaled.y_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(scaled.y_train.std()) == pytest.approx(1.0, abs=1e-5)
    for split in ("y_train", "y_val", "y_test"):
        restored = getattr(scaled, split) / scaled.y_scale + scaled.y_offset
        np.testing.assert_allclose(restored, getattr(raw, split), rtol=1e-4, atol=1e-4)


def test_target_scaling_ignored_for_classification():
    ds = load(make_cfg("xor", target_scaling="standardize"))
    assert ds.y_train.dtype == np.int32 and set(np.unique(ds.y_train)) == {0, 1}


@pytest.mark.parametrize("name", GENERATED)
def test_generated_input_scalings(name):
    std = load(make_cfg(name, noise=0.1, scaling="standardize"))
    np.testing.assert_allclose(std.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std.x_train.std(axis=0), 1.0, atol=1e-4)
    unit = load(make_cfg(name, noise=0.1, scaling="unit"))
    np.testing.assert_allclose(unit.x_train.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(unit.x_train.max(axis=0), 1.0, atol=1e-6)
    raw = load(make_cfg(name, noise=0.1, scaling="none"))
    # Val and test are scaled with the train statistics, not their own.
    lo, span = raw.x_train.min(axis=0), raw.x_train.max(axis=0) - raw.x_train.min(axis=0)
    np.testing.assert_allclose(unit.x_test, (raw.x_test - lo) / span, atol=1e-5)


def test_a_command_reusing_loads_loads_each_data_set_once(mnist_env, monkeypatch):
    from dlrun.data import reused_loads

    with reused_loads():
        first = load(make_cfg(subset=1000))
        assert load(make_cfg(subset=1000)) is first
        other = load(make_cfg(subset=2000))  # another config: loaded, and kept in its place
        assert len(other.y_train) == 2000 and load(make_cfg(subset=2000)) is other
        monkeypatch.setenv("DLRUN_DATA_DIR", str(mnist_env.parent) + "/")  # other files: loaded
        assert load(make_cfg(subset=2000)) is not other
    again = load(make_cfg(subset=1000))  # outside the block, every load is the loader's own
    assert again is not first and load(make_cfg(subset=1000)) is not again
    assert np.array_equal(again.x_train, first.x_train) and np.array_equal(again.y_val, first.y_val)
