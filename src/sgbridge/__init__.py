"""sgbridge: a self-hosted bridge between SendGrid and Segment.

The package is laid out along the data flow: ``inbound`` (HTTP → verified events) →
``journal`` (durable log; the only package that speaks SQL) → ``routing`` (pure mappings) →
``delivery`` (claim → send → classify → settle) → ``destinations`` (HTTP clients).
``emulators`` stand in for the external APIs; ``app`` and ``cli`` compose everything.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
