"""A folder of the user's images: `data=image_folder data.path=DIR`, laid out as torchvision's
ImageFolder and Keras's image_dataset_from_directory read one.

DIR holds one folder per class (`DIR/cat/1.png`, `DIR/dog/2.jpg`; the class names sorted are
labels 0..k-1), or `train/` with `val/` and `test/` where there are, each holding the same class
folders; the splits missing are carved as for data=npz (dlrun/data/files.py). A class folder's
subfolders hold its images too; files of other kinds and hidden entries are passed over. Each
image is decoded with Pillow to data.color (grey or rgb) and resized to data.size (bilinear, as
both those readers do), and kept uint8 NHWC like MNIST's and CIFAR-10's, so data.scaling acts as
it does for them.

Decoding is paid once per content. The folder's digest is a sha256 over every image, in listing
order, of its relative path (posix), a NUL, its length (8 bytes, big-endian) and its bytes:
summary.json records it as data_source.sha256. The decoded arrays are cached under the dlrun
cache folder (`image_folder/<sha256 of digest, size, colour>.npz`, written atomically), so a
second run, or a trial in another process, reads them instead; a damaged entry is decoded again.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image, UnidentifiedImageError

from dlrun.data import download, fields, files
from dlrun.errors import DataError
from dlrun.results import atomic_write_bytes

# The suffixes torchvision's ImageFolder takes (IMG_EXTENSIONS), .gif as Keras takes it too.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
SPLITS = files.NPZ_SPLITS
COLORS = {"grey": ("L", 1), "rgb": ("RGB", 3)}  # data.color -> (Pillow mode, channels)
CACHE_FORMAT = 1  # part of every cache key: bump it when the cached arrays change meaning
WANTED = "DIR, a folder with one folder of images per class (or train/, val/, test/ of them)"

# Images decoded by this process (not read from the cache): the cache's test and benchmark count them.
decoded_images = 0


@dataclass(frozen=True)
class Listing:
    """A folder's images: split -> ((class name, relative paths of its images), ...), sorted."""

    root: Path
    splits: dict

    def files(self):
        return [rel for classes in self.splits.values() for _, rels in classes for rel in rels]

    def stamp(self) -> tuple:
        """(relative path, size, mtime) of every image: cheap, and changes when a file may have."""
        root = str(self.root)
        stats = [(rel, os.stat(os.path.join(root, rel))) for rel in self.files()]
        return tuple((rel, stat.st_size, stat.st_mtime_ns) for rel, stat in stats)


def prepare(cfg: Any) -> files.Prepared:
    """Return the checked, split images of the folder data.path names (decoded once per content)."""
    root = files.data_path(cfg, WANTED)
    listing = list_images(root, cfg.path)
    size, color = image_size(cfg), str(fields.choice_field(cfg, "color", tuple(COLORS)))
    try:
        stamp = listing.stamp()
    except OSError as error:
        raise DataError(f"{error.filename}: cannot read it ({error.strerror or error})") from None
    key = ("image_folder", str(root), stamp, size, color)
    return files.prepared(cfg, root, key, lambda: read(listing, size, color))


def image_size(cfg: Any) -> tuple[int, int]:
    value = fields.field(cfg, "size")
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise DataError(f"data.size={value!r} must be [height, width], two integers >= 1 (e.g. [32,32])")
    return int(value[0]), int(value[1])


def list_images(root: Path, given: Any) -> Listing:
    """Return the folder's Listing, checking its layout: class folders, or train/ (val/, test/)."""
    try:
        folders = _folders(root)
    except NotADirectoryError:
        raise DataError(f"{root}: is a file, not a folder of class folders (data.path={given})") from None
    except OSError as error:
        raise DataError(f"{root}: cannot read it ({error.strerror or error}); data.path={given}") from None
    if "train" not in folders:
        if folders and set(folders) <= {"val", "test"}:
            raise DataError(f"{root}: has {'/, '.join(folders)}/ but no train/ beside them")
        return _at_least_two(root, Listing(root, {"train": _classes(root, root)}))
    others = [name for name in folders if name not in SPLITS]
    if others:
        raise DataError(
            f"{root}: holds train/ and also {', '.join(others)}/: with split folders, every class "
            "folder goes inside train/ (and val/, test/)"
        )
    splits = {split: _classes(root, root / split) for split in SPLITS if split in folders}
    names = [name for name, _ in splits["train"]]
    for split, classes in splits.items():
        mine = [name for name, _ in classes]
        if mine != names:
            missing = sorted(set(names) - set(mine)) or sorted(set(mine) - set(names))
            which = "lacks" if set(names) - set(mine) else "has, and train/ lacks,"
            raise DataError(
                f"{root / split}: {which} class folder {', '.join(missing)}: "
                f"every split needs the same classes as train/ ({', '.join(names)})"
            )
    return _at_least_two(root / "train", Listing(root, splits))


def _at_least_two(folder: Path, listing: Listing) -> Listing:
    names = [name for name, _ in listing.splits["train"]]
    if len(names) < 2:
        raise DataError(f"{folder}: has one class folder ({names[0]}); a classifier needs at least 2")
    return listing


def _folders(path: Path) -> list[str]:
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())


def _classes(root: Path, folder: Path) -> tuple:
    names = _folders(folder)
    if not names:
        raise DataError(
            f"{folder}: has no class folders: put each class's images in a folder of its own "
            f"({folder}/<class>/...), or in train/, val/ and test/ each with class folders"
        )
    classes = tuple((name, _images(root, folder / name)) for name in names)
    for name, rels in classes:
        if not rels:
            raise DataError(f"{folder / name}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return classes


def _images(root: Path, folder: Path) -> tuple[str, ...]:
    # plain strings, not Paths: pathlib costs ~20 us a file, most of a cached run's time at 5,000
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        prefix = Path(parent).relative_to(root).as_posix() + "/"
        found += [prefix + n for n in names if not n.startswith(".") and n.lower().endswith(IMAGE_SUFFIXES)]
    return tuple(sorted(found))


def read(listing: Listing, size: tuple[int, int], color: str) -> tuple[dict, str]:
    """Return ({split: (uint8 NHWC images, class names)}, the folder's digest): from the cache
    where it holds this content at this size and colour, else decoded and cached."""
    digest = content_digest(listing)
    key = hashlib.sha256(repr((CACHE_FORMAT, digest, size, color)).encode()).hexdigest()
    path = download.cache_root() / "image_folder" / f"{key}.npz"
    raw = _cached(path, listing, size, COLORS[color][1])
    if raw is None:
        raw = _decode(listing, size, color)
        _store(path, raw)
    return raw, digest


def content_digest(listing: Listing) -> str:
    """Return the folder's sha256 over its images' paths and bytes (the module docstring says how)."""
    digest, root = hashlib.sha256(), str(listing.root)
    for rel in listing.files():
        try:
            with open(os.path.join(root, rel), "rb") as file:
                data = file.read()
        except OSError as error:
            raise DataError(f"{listing.root / rel}: cannot read it ({error.strerror or error})") from None
        digest.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _decode(listing: Listing, size: tuple[int, int], color: str) -> dict:
    global decoded_images
    mode = COLORS[color][0]
    raw = {}
    for split, classes in listing.splits.items():
        x = [_image(listing.root / rel, mode, size) for _, rels in classes for rel in rels]
        y = [name for name, rels in classes for _ in rels]
        raw[split] = (np.stack(x).reshape(len(x), *size, -1), np.array(y))
        decoded_images += len(x)
    return raw


def _image(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as image:
            # Pillow's size is (width, height); data.size is [height, width], as the arrays are
            return np.asarray(image.convert(mode).resize(size[::-1], Image.Resampling.BILINEAR))
    except UnidentifiedImageError:
        raise DataError(f"{path}: is not an image Pillow can read (a damaged or mislabelled file?)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: is a damaged image ({error})") from None


def _cached(path: Path, listing: Listing, size: tuple[int, int], channels: int) -> dict | None:
    """The cached splits, or None where there are none or they do not fit the listing."""
    try:
        with np.load(path, allow_pickle=False) as held:
            names = held["names"]
            raw = {split: (held[f"x_{split}"], names[held[f"y_{split}"]]) for split in listing.splits}
    except (OSError, EOFError, KeyError, ValueError, IndexError, zipfile.BadZipFile):
        return None  # absent, or damaged: decoded again and replaced
    for split, classes in listing.splits.items():
        x, y = raw[split]
        expected = [name for name, rels in classes for _ in rels]
        if x.dtype != np.uint8 or x.shape != (len(expected), *size, channels) or y.tolist() != expected:
            return None
    return raw


def _store(path: Path, raw: dict) -> None:
    names = np.array(sorted({str(v) for _, y in raw.values() for v in y}))
    arrays = {"names": names}
    for split, (x, y) in raw.items():
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, np.searchsorted(names, y).astype(np.int32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError:
        pass  # a cache that cannot be written costs the next run a decode, not this run
