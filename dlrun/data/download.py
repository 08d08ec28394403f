"""Finding a data set's official files: on disk, else downloaded once into a cache, always checksummed.

Lookup order for `<dataset>/<file>`: $DLRUN_DATA_DIR/<dataset>/, then the cache
($DLRUN_CACHE_DIR, else $XDG_CACHE_HOME/dlrun, else ~/.cache/dlrun)/<dataset>/. A missing file is
downloaded into the cache from the set's official URLs, or from $DLRUN_DATA_MIRROR when set: a
comma-separated list of base URLs laid out like DLRUN_DATA_DIR (`<base>/<dataset>/<file>`), so
`python -m http.server` in a data folder is a mirror. A download goes to a temporary file beside
its destination, is checked, then renamed into place: a failed one leaves nothing behind.

Every file is checked against the MD5 the set's official page publishes (the tables live with
each set's reader). Files repackaged on purpose (a private subset, a test's tiny archive) are
accepted only through $DLRUN_DATA_MD5: a local `md5sum`-style manifest whose lines
`<md5>  <dataset>/<file>` replace the official sums of the files they name. Nothing is ever
read unchecked.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from dlrun.errors import DataError

DOWNLOAD_TIMEOUT_S = 15.0
MIRROR_ENV = "DLRUN_DATA_MIRROR"
MANIFEST_ENV = "DLRUN_DATA_MD5"
HINT = "place the files in $DLRUN_DATA_DIR/{dataset}/ or set DLRUN_DATA_MIRROR to a reachable copy"

# path -> None (good) or a short reason why the file is not the one expected
Check = Callable[[Path], "str | None"]


def cache_root() -> Path:
    if os.environ.get("DLRUN_CACHE_DIR"):
        return Path(os.environ["DLRUN_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "dlrun"


def search_dirs(dataset: str) -> list[Path]:
    """Return the directories searched for a set's files, in lookup order; the last is the cache."""
    dirs = []
    if os.environ.get("DLRUN_DATA_DIR"):
        dirs.append(Path(os.environ["DLRUN_DATA_DIR"]).expanduser() / dataset)
    return dirs + [cache_root() / dataset]


def mirror_urls(dataset: str, name: str, official: tuple[str, ...]) -> list[str]:
    """Return the URLs to try for one file: the mirrors' when DLRUN_DATA_MIRROR is set."""
    env = os.environ.get(MIRROR_ENV)
    if not env:
        return list(official)
    bases = [b.strip().rstrip("/") + "/" for b in env.split(",") if b.strip()]
    return [f"{base}{dataset}/{name}" for base in bases]


def expected_md5(dataset: str, name: str, official: str) -> str:
    """Return the MD5 a file must have: the manifest's entry for it, else the official one."""
    manifest = os.environ.get(MANIFEST_ENV)
    if not manifest:
        return official
    try:
        lines = Path(manifest).expanduser().read_text().splitlines()
    except OSError as e:
        raise DataError(
            f"{MANIFEST_ENV}={manifest}: cannot read the checksum manifest "
            f"({e.strerror or e}); fix the path or unset it"
        ) from None
    for line in lines:
        digest, _, path = line.strip().partition(" ")
        if path.strip().lstrip("*") == f"{dataset}/{name}":
            return digest.lower()
    return official


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def md5_check(md5: str) -> Check:
    """A Check comparing a file's MD5 with `md5`."""

    def check(path: Path) -> str | None:
        digest = md5_of(path)
        return None if digest == md5 else f"checksum mismatch (got {digest}, expected {md5})"

    return check


def locate(dataset: str, name: str, urls: list[str], check: Check) -> Path:
    """Return the path of a checked copy of `<dataset>/<name>`, downloading it if none is on disk.

    A file found on disk but failing `check` is an error naming it (deleting it lets the next
    run download a fresh copy); a download that fails everywhere is an error naming the URLs.
    """
    dirs = search_dirs(dataset)
    path = next((d / name for d in dirs if (d / name).is_file()), None)
    if path is None:
        return download(dataset, name, urls, dirs, check)
    reason = check(path)
    if reason is not None:
        raise DataError(f"{dataset} file '{name}' at {path} has {reason}; delete it to download a fresh copy")
    return path


def download(dataset: str, name: str, urls: list[str], searched: list[Path], check: Check) -> Path:
    """Download `name` into the cache (the last of `searched`) from the first good URL."""
    dest_dir, reasons = searched[-1], []
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reasons.append(f"cannot create {dest_dir}: {e.strerror or e}")
    else:
        for url in urls:
            reason = _try_url(url, dest_dir / name, check)
            if reason is None:
                return dest_dir / name
            reasons.append(f"{url}: {reason}")
    where = ", ".join(str(d) for d in searched)
    raise DataError(
        f"{dataset} file '{name}' not found in {where} and could not be downloaded "
        f"({'; '.join(reasons) or 'no URLs configured'}); {HINT.format(dataset=dataset)}"
    )


def _try_url(url: str, dest: Path, check: Check) -> str | None:
    """Fetch url to dest atomically after checking it; return None, or a short failure reason."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        return f"cannot write to {dest.parent}: {e.strerror or e}"
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out)
        reason = check(tmp)
        if reason is not None:
            return reason
        os.replace(tmp, dest)
        return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except urllib.error.URLError as e:
        return str(getattr(e.reason, "strerror", None) or e.reason)
    except TimeoutError:
        return "timed out"
    except (OSError, EOFError, ValueError, http.client.HTTPException) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        # A failed or rejected download must never be left where lookup could find it.
        tmp.unlink(missing_ok=True)


def _fetch(url: str, out) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
        total = resp.headers.get("Content-Length")
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        # stderr keeps stdout clean for the runner's own output.
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
            task = progress.add_task(f"downloading {name}", total=int(total) if total else None)
            got = 0
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                got += len(chunk)
                progress.advance(task, len(chunk))
        if total and got != int(total):
            raise ValueError(f"truncated: {got} of {total} bytes")
