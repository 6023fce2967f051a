"""JAX's persistent compilation cache, for every study that trains on JAX.

Compiling is a large share of a short trial on the CPU: Keras compiles the initializers of each
new layer shape while it builds a model (about 0.9 s for a new 3-layer MLP here), and each new
architecture's epoch program or training step compiles in about 0.5 s. JAX can keep compiled
programs on disk and load them in a few milliseconds; every process of a grid then shares them,
and so does every later run. It is on for studies on JAX (`tuning.evaluation.keras.trainer_choice.create_trainer`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_ENV = "TUNING_COMPILATION_CACHE"  # a folder, or "off"
# Every program is kept: compiling an initializer Keras builds per shape costs far more than
# loading it. The folder is not bounded: JAX's bounded cache (least recently used
# files evicted, `jax_compilation_cache_max_size`) races between processes (seen here: "Error
# writing persistent compilation cache entry ... FileNotFoundError ... -atime" with a grid's two
# workers, and the entry lost). A study of the book's MLP adds a few MiB at most; delete the
# folder to reclaim it.
CACHE_MIN_COMPILE_SECONDS = 0.0


def default_cache_folder() -> Path:
    """``$XDG_CACHE_HOME/tuning/jax`` (``~/.cache/tuning/jax``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tuning" / "jax"


def enable_compilation_cache(folder: str | Path | None = None) -> Path | None:
    """Keep compiled programs in JAX's persistent cache, in ``folder`` (else
    ``$TUNING_COMPILATION_CACHE``, else `default_cache_folder`), for this process. A folder set
    through JAX's own ``JAX_COMPILATION_CACHE_DIR`` is left as it is;
    ``TUNING_COMPILATION_CACHE=off`` leaves the cache off. Returns the folder in use, or None."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    setting = str(folder) if folder is not None else os.environ.get(CACHE_ENV, "")
    if setting.lower() == "off":
        return None
    path = Path(setting).expanduser() if setting else default_cache_folder()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("no compilation cache: cannot create %s (%s)", path, exc.strerror)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECONDS)
    return path
