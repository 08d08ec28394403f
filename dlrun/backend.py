"""Process-wide JAX settings: the persistent compilation cache and rank-promotion strictness."""

from __future__ import annotations

import os
from pathlib import Path

import jax


def cache_root() -> Path:
    """Return dlrun's cache folder: `$DLRUN_CACHE_DIR`, else `$XDG_CACHE_HOME/dlrun` or ~/.cache/dlrun."""
    configured = os.environ.get("DLRUN_CACHE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dlrun"


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache so a repeated config does not recompile.

    JAX's defaults skip programs that compile in under a second or are small, which is every
    MLP here: both thresholds are lowered so that those are cached too.
    """
    directory = cache_root() / "jax"
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return directory
