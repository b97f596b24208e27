"""docs/security.md shows the service's Redis ACL as the tests grant it, and explains every
command in it."""

from __future__ import annotations

from streamproc.config.settings import Settings
from tests.conftest import REPO
from tests.harness.redis_acl import (
    CLEANUP_COMMANDS,
    CLUSTER_COMMANDS,
    SERVICE_COMMANDS,
    acl_setuser_line,
)

DOC = REPO / "docs/security.md"


def test_the_acl_line_is_the_one_the_tests_grant() -> None:
    default_namespace = Settings.model_fields["redis_namespace"].default
    assert f"\n{acl_setuser_line(default_namespace)}\n" in DOC.read_text(encoding="utf-8")


def test_every_command_of_the_acl_is_explained() -> None:
    redis_section = DOC.read_text(encoding="utf-8").split("## Redis", 1)[1]
    table = redis_section.split("| command | sent by |", 1)[1].split("\n\n", 1)[0]
    missing = [c for c in SERVICE_COMMANDS if f"`{c.replace('|', ' ').upper()}`" not in table]
    assert not missing, f"docs/security.md does not say what these are for: {missing}"


def test_the_additions_are_the_ones_the_tests_grant() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for commands in (CLUSTER_COMMANDS, CLEANUP_COMMANDS):
        assert f"`{' '.join(f'+{c}' for c in commands)}`" in doc
