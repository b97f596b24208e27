"""The results of fault cases, one row each, and the FAULTS.md table `make faults` writes."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.harness.secure_profile import Profile


@dataclass
class CaseResult:
    """One case run with one seed: what happened and what the oracles found."""

    case: str
    seed: int
    events: int
    happened: str
    lost: int
    repeated: int
    state_errors: int
    detect_s: float | None
    recover_s: float | None
    peak_rss_mb: float
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


RESULTS: list[CaseResult] = []  # filled by the cases of a session, in the order they ran
PROFILE_TEXT: dict[Profile, str] = {
    "plaintext": "the workers reach Kafka and Redis in plaintext, without logging in",
    "secure": "the workers reach Kafka over SASL_SSL as a SCRAM-SHA-512 user and Redis over "
    "TLS (rediss://) as an ACL user held to the service's commands and keys",
}


def profile_line(profile: Profile) -> str:
    """What the table's profile was, in a sentence."""
    return f"Profile: **{profile}**: {PROFILE_TEXT[profile]}."


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(results: list[CaseResult]) -> str:
    """A Markdown table, one row per case and seed."""
    lines = [
        "| case | seed | events | what happened | lost | repeated | state errors | "
        "detect s | recover s | peak RSS MB | run s | result |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        verdict = "pass" if r.passed else f"**fail** ({len(r.problems)})"
        lines.append(
            f"| {r.case} | {r.seed} | {r.events:,} | {r.happened} | {r.lost} | {r.repeated} | "
            f"{r.state_errors} | {_seconds(r.detect_s)} | {_seconds(r.recover_s)} | "
            f"{r.peak_rss_mb:.0f} | {r.seconds:.0f} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def failures(results: list[CaseResult]) -> str:
    """Each failed case's problems, as the oracles worded them."""
    blocks = []
    for r in results:
        if r.problems:
            listed = "\n".join(f"  - {problem}" for problem in r.problems)
            blocks.append(f"- {r.case}, seed {r.seed}:\n{listed}")
    return "\n".join(blocks) + "\n" if blocks else "None.\n"


def write_report(path: Path, results: list[CaseResult], profile: Profile) -> None:
    """FAULTS.md: how it was run, the table, then what failed and why."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    python = sys.version.split()[0]
    text = (
        "# Fault matrix\n\n"
        f"Written by `make faults` (`pytest tests/faults`) on {now}: {platform.platform()}, "
        f"Python {python}. Each case runs real `streamproc worker` processes against a broker "
        "and a redis-server of its own, behind TCP proxies (tests/harness). Lost, repeated "
        "and state errors come from the oracles (tests/harness/oracles.py); detect: from the "
        "fault to the first sign of it from a worker (a warning or worse in its log, /readyz "
        "or /healthz not OK, /metrics unanswered, an exit); recover: from the end of the fault "
        "to the first prediction of an order not scored before.\n\n"
        f"{profile_line(profile)}\n\n"
        f"{table(results)}\n"
        "## Failures\n\n"
        f"{failures(results)}"
    )
    path.write_text(text)
