"""What the benchmark scripts share: a measurement in a fresh process on one Keras backend (Keras
reads its backend once per process), the process's memory, and the machine the figures come from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def run_child(script: str, args: list[str], keras_backend: str) -> dict[str, Any]:
    """Run ``script --child RESULT_JSON ARGS`` on ``keras_backend`` and return what it wrote."""
    with tempfile.TemporaryDirectory(prefix="tuning-bench-") as tmp:
        result = Path(tmp) / "result.json"
        env = {**os.environ, "KERAS_BACKEND": keras_backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run(
            [sys.executable, script, "--child", str(result), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"{Path(script).name} on {keras_backend} failed:\n{done.stderr[-3000:]}"
            )
        return json.loads(result.read_text())


def write_result(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result), encoding="utf-8")


def rss_mb() -> float:
    """This process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / 2**20


def machine() -> str:
    """One line: CPU, cores, memory, Python and the frameworks' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            )
        with open("/proc/meminfo", encoding="utf-8") as info:
            memory_gib = int(info.readline().split()[1]) / 2**20
    except (OSError, StopIteration):
        memory_gib = float("nan")
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("keras", "tensorflow", "jax", "jaxlib")
    )
    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} cores, {memory_gib:.0f} GiB; "
        f"Python {platform.python_version()}, {versions}"
    )


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
