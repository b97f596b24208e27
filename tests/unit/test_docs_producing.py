"""The README's "Producing from Python" snippet is code that runs: each of its lines stands, in
its order, in examples/send_orders.py (which tests/integration/test_examples.py runs)."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _stripped(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_the_readme_snippet_is_taken_from_the_example() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Producing from Python", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    example = iter(_stripped((REPO / "examples/send_orders.py").read_text(encoding="utf-8")))
    missing = [line for line in _stripped(snippet) if line not in example]
    assert not missing, f"README lines not in examples/send_orders.py, in order: {missing}"
