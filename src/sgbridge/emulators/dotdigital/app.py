"""The Dotdigital API emulator app: the endpoints Segment's Dotdigital destinations call."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from sgbridge.emulators.dotdigital import contacts, control, v2
from sgbridge.emulators.dotdigital.limits import TierLimiter
from sgbridge.emulators.dotdigital.pipeline import REGIONS, DotdigitalEmulator, build_routes, unknown_endpoint
from sgbridge.emulators.dotdigital.state import DotdigitalState
from sgbridge.emulators.faults import FaultInjector

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
ENDPOINTS = [*v2.ENDPOINTS, *contacts.ENDPOINTS]


def create_dotdigital_emulator(
    users: Mapping[str, str] | None = None,
    *,
    region: str = "r1",
    job_delay_seconds: float = 1.0,
    rate_limits: Mapping[str, tuple[int, float] | Mapping[str, Any]] | None = None,
    from_addresses: Iterable[str] | None = None,
    default_email_status: str = "subscribed",
    fault_seed: int | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the emulator app (``app.state.emulator`` is the ``DotdigitalEmulator``).

    ``users``: API user name -> password (HTTP Basic); ``None`` accepts any non-empty pair.
    ``region``: where the account lives (``r1`` Europe, ``r2`` North America, ``r3`` Asia
    Pacific); requests whose ``Host`` is another region's API host get 403, requests to any other
    host (127.0.0.1...) are taken as addressed to the account's region. ``job_delay_seconds``:
    how long enrolments stay ``Processing`` and sends ``Sending``. ``rate_limits``: tier ->
    ``(limit, period_seconds)`` (tiers ``low``, ``medium``, ``high``, ``enrolments``).
    ``from_addresses``: the account's verified custom from addresses for ``POST /v2/email``
    (``None``: any valid address). ``default_email_status``: the channel status of a contact
    created without one (Dotdigital: "defaults to values defined in Settings").
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {', '.join(REGIONS)}")
    emulator = DotdigitalEmulator(
        state=DotdigitalState(job_delay_seconds=job_delay_seconds, clock=clock,
                              default_email_status=default_email_status),
        users=dict(users) if users is not None else None,
        region=region,
        limiter=TierLimiter(rate_limits, clock=clock),
        faults=FaultInjector(seed=fault_seed),
        from_addresses={a.lower() for a in from_addresses} if from_addresses is not None else None,
    )
    routes = [*control.ROUTES, *build_routes(ENDPOINTS), Route("/{path:path}", unknown_endpoint, methods=ALL_METHODS)]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app


async def serve_dotdigital_emulator(host: str = "127.0.0.1", port: int = 8767, users: Mapping[str, str] | None = None,
                                    *, region: str = "r1", job_delay_seconds: float = 1.0,
                                    log_level: str = "info") -> None:
    """Run the emulator under uvicorn until cancelled (``sgbridge emulate dotdigital``)."""
    from sgbridge.emulators.serving import serve_app

    app = create_dotdigital_emulator(users, region=region, job_delay_seconds=job_delay_seconds)
    await serve_app(app, host=host, port=port, log_level=log_level)
