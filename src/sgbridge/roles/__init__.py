"""Roles: what one sgbridge process does. Plain ``sgbridge serve`` runs each in a process of its own.

- ``ingest``: the HTTP endpoints and the journal writer. It never waits on a destination.
- ``deliver``: the HTTP destinations (Segment, the action destinations) and housekeeping.
- ``warehouse``: event loads and the object sync (DuckDB takes one writing process per file).
- ``sync``: the object sync alone, for a warehouse that another process (or machine) loads.
- ``workflows``: the workflows' intake (every stored event → runs) and their timers and steps.
- ``web``: the Event Delivery console at ``/ui`` (its own port, ``console.port``), read-mostly.

The processes share nothing but the journal (and, under the supervisor, a runtime folder for
heartbeats and Prometheus' multiprocess files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # sgbridge.settings composes this package's settings model
    from sgbridge.settings import Settings

ROLES = ("ingest", "deliver", "warehouse", "sync", "workflows", "web")
WAREHOUSE = "warehouse"
WORKFLOWS = "workflows"  # also the name of the workflows' intake on the delivery engine
WEB = "web"
IN_ONE_PROCESS = frozenset(("ingest", "deliver", "warehouse", "workflows", WEB))  # build_app's default: everything


def configured_roles(settings: Settings) -> list[str]:
    """The roles the supervisor starts for these settings (the object sync runs in `warehouse`)."""
    roles = ["ingest"]
    if any(settings.write_key_for(name) for name in settings.sources) or settings.actions:
        roles.append("deliver")
    if settings.warehouse.enabled:
        roles.append("warehouse")
    if settings.workflows_wanted():
        roles.append(WORKFLOWS)
    if settings.console.enabled:
        roles.append(WEB)
    return roles


def parse_roles(values: tuple[str, ...] | list[str]) -> frozenset[str]:
    """``--role a --role b`` or ``--role a,b``; unknown names raise ValueError."""
    roles = {part.strip() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise ValueError(f"unknown role(s) {', '.join(unknown)}: choose from {', '.join(ROLES)}")
    return frozenset(roles)


def destination_names(settings: Settings) -> list[str]:
    """Every destination the settings configure, whichever process runs it (pruning needs them all)."""
    names = ["segment"] if any(settings.write_key_for(name) for name in settings.sources) else []
    names += list(settings.actions)
    if settings.warehouse.enabled:
        names.append(WAREHOUSE)  # sgbridge.destinations.warehouse.NAME, without importing dlt
    if settings.workflows_wanted():
        names.append(WORKFLOWS)  # sgbridge.destinations.workflows.NAME
    return names


def housekeeping_role(settings: Settings) -> str:
    """The one role whose process prunes the log: deliver, else warehouse, else ingest."""
    configured = configured_roles(settings)
    return next(role for role in ("deliver", "warehouse", "ingest") if role in configured)
