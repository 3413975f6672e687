"""Errors raised by the mapping and subscription ports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MappingIssue:
    """One problem found by validation: where in the mapping (keys from the root) and what."""

    path: tuple[str, ...]
    problem: str

    @property
    def segment_message(self) -> str:
        """The message mapping-kit's ValidationError carries: `/a/@path should be ...`."""
        return f"/{'/'.join(self.path)} {self.problem}."

    def __str__(self) -> str:
        return ".".join(("mapping", *self.path)) + ": " + self.problem


class MappingError(ValueError):
    """A mapping that Segment would reject, before running it (`kind="validation"`) or while running it.

    `issues` lists every validation problem (mapping-kit reports all of them at once); runtime
    errors have none and carry mapping-kit's own message.
    """

    def __init__(self, message: str, *, kind: str = "runtime", issues: tuple[MappingIssue, ...] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.issues = issues

    @classmethod
    def from_issues(cls, issues: list[MappingIssue]) -> MappingError:
        return cls("; ".join(str(i) for i in issues), kind="validation", issues=tuple(issues))


class SubscriptionError(ValueError):
    """A subscription (trigger) that Segment's parseFql rejects, or that fails while being evaluated."""
