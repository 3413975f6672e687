"""② The journal: the only package that speaks SQL. See journal.py."""

from sgbridge.journal.journal import Journal, JournalUnavailable

__all__ = ["Journal", "JournalUnavailable"]
