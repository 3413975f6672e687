"""The SendGrid v3 API emulator app: wiring of the API areas, the pipeline and the control routes."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Route

from sgbridge.emulators.faults import FaultInjector
from sgbridge.emulators.sendgrid import (
    contact_search,
    contacts,
    control,
    downloads,
    exports,
    fields,
    lists,
    mail,
    scopes,
    segments,
    singlesends,
    suppression_lists,
    suppressions,
    templates,
)
from sgbridge.emulators.sendgrid.auth import ApiKeys, KeyRing
from sgbridge.emulators.sendgrid.openapi import load_specs
from sgbridge.emulators.sendgrid.pipeline import Endpoint, SendGridEmulator, build_routes, unknown_endpoint
from sgbridge.emulators.sendgrid.ratelimit import DEFAULT_LIMIT_PER_MINUTE, RateLimit, RateLimiter
from sgbridge.emulators.sendgrid.seeding import seed_account
from sgbridge.emulators.sendgrid.state import SendGridEmulatorState

# Literal paths before templated ones (``/contacts/count``, ``/contacts/exports`` before ``/contacts/{id}``).
ENDPOINTS: list[Endpoint] = [
    *contacts.ENDPOINTS,
    *contact_search.ENDPOINTS,
    *exports.ENDPOINTS,
    *contacts.LATE_ENDPOINTS,
    *lists.ENDPOINTS,
    *fields.ENDPOINTS,
    *segments.ENDPOINTS,
    *singlesends.ENDPOINTS,
    *suppressions.ENDPOINTS,
    *suppression_lists.ENDPOINTS,
    *mail.ENDPOINTS,
    *templates.ENDPOINTS,
    *scopes.ENDPOINTS,
]
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_sendgrid_emulator(
    api_keys: ApiKeys = None,
    *,
    job_delay_seconds: float = 1.0,
    fault_seed: int | None = None,
    rate_limits: Mapping[str, RateLimit | tuple[int, float]] | None = None,
    default_rate_limit: RateLimit | tuple[int, float] = (DEFAULT_LIMIT_PER_MINUTE, 60.0),
    templates: Mapping[str, str] | None = None,
    openapi_dir: str | Path | None = None,
    reject_invalid_emails: bool = True,
    marketing_campaigns: bool = True,
    seed_contacts: int = 0,
    seed: int = 0,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """Build the emulator app (``app.state.emulator`` is the ``SendGridEmulator``).

    ``api_keys``: ``None`` accepts any bearer key with full access; a list of keys gives each
    full access; a mapping ``key -> scopes`` (``None`` = full access) restricts keys.
    ``job_delay_seconds``: how long contact jobs stay ``pending``. ``rate_limits``: per bucket
    ``"METHOD /v3/path"`` -> ``(limit, period_seconds)``; other endpoints get
    ``default_rate_limit``. ``templates``: template id -> name (default: three dynamic ones).
    ``openapi_dir``: the spec folder (default: ``$SGBRIDGE_SENDGRID_OPENAPI_DIR``, else the
    specs bundled in the package). ``marketing_campaigns=False``: an account without
    Marketing Campaigns, where every ``/v3/marketing/*`` endpoint answers 403. ``seed_contacts``:
    start with a generated account of that many contacts (``seeding.seed_account``, with
    ``seed``); 0 starts empty. ``clock``: epoch seconds, injectable for tests.
    """
    specs = load_specs(openapi_dir)
    full_access = {scope for endpoint in ENDPOINTS for scope in endpoint.scopes}
    emulator = SendGridEmulator(
        state=SendGridEmulatorState(job_delay_seconds=job_delay_seconds, templates=templates, clock=clock),
        keys=KeyRing(api_keys, full_access),
        limiter=RateLimiter(rate_limits, default=default_rate_limit, clock=clock),
        specs=specs,
        faults=FaultInjector(seed=fault_seed),
        reject_invalid_emails=reject_invalid_emails,
        marketing_campaigns=marketing_campaigns,
    )
    if seed_contacts:
        seed_account(emulator.state, seed_contacts, seed)
    routes = [
        *control.ROUTES,
        *downloads.ROUTES,
        *build_routes(ENDPOINTS, specs),
        Route("/{path:path}", unknown_endpoint, methods=ALL_METHODS),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app


async def serve_sendgrid_emulator(
    host: str = "127.0.0.1",
    port: int = 8766,
    api_keys: ApiKeys = None,
    *,
    job_delay_seconds: float = 1.0,
    marketing_campaigns: bool = True,
    seed_contacts: int = 0,
    seed: int = 0,
    log_level: str = "info",
) -> None:
    """Run the emulator under uvicorn until cancelled (``sgbridge emulate sendgrid``)."""
    from sgbridge.emulators.serving import serve_app

    app = create_sendgrid_emulator(api_keys, job_delay_seconds=job_delay_seconds,
                                   marketing_campaigns=marketing_campaigns, seed_contacts=seed_contacts, seed=seed)
    # uvicorn shuts down on SIGTERM and then raises it again under the previous handler; the
    # default one would end the process at once, leaving the export files behind. So the signal
    # is noted here, the files removed, and only then is it raised under the default handler.
    terminated: list[int] = []
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    try:
        await serve_app(app, host=host, port=port, log_level=log_level)
    finally:
        app.state.emulator.state.close()  # export files go with the emulator
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if terminated:
        signal.raise_signal(signal.SIGTERM)
