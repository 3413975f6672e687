"""② The journal: the only package that speaks SQL. See journal.py."""

from sgbridge.journal.journal import Journal

__all__ = ["Journal"]
