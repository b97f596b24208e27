"""`streamproc demo` (what `make demo` runs) works end to end and agrees with the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Stack, free_port


def test_the_demo_runs_the_scenario_and_its_counts_match_the_truth(
    stack: Stack, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_WEB_PORT": str(free_port()),
    }
    result = subprocess.run(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "streamproc.cli",
            "demo",
            "--events",
            "3000",
            "--out",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every count matches the generator's ground truth" in result.stdout
    assert "produced      shop.order.clean.v1" in result.stdout
    # streamproc top's plain view of the whole run, as printed when not on a terminal
    assert "prediction delay" in result.stdout and "dead letters" in result.stdout
    assert (tmp_path / "orders.truth.jsonl").exists()
