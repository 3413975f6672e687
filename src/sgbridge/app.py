"""build_app(settings): the Starlette application; its lifespan runs the delivery workers."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sgbridge.delivery import metrics
from sgbridge.delivery.worker import DeliveryWorker, YieldTo
from sgbridge.destinations.segment import SegmentDestination
from sgbridge.inbound.asgi import Receive, Scope, Send, send_json
from sgbridge.inbound.routes import PATH as WEBHOOK_PATH
from sgbridge.inbound.routes import SendGridInbound
from sgbridge.inbound.segment_routes import SegmentInbound
from sgbridge.inbound.twilio import TWILIO_PATH, TwilioInbound
from sgbridge.journal import Journal
from sgbridge.journal.dialect import SQLiteDialect
from sgbridge.journal.housekeeping import prune
from sgbridge.journal.locks import DestinationLocks
from sgbridge.roles import IN_ONE_PROCESS, destination_names, heartbeat, housekeeping_role
from sgbridge.roles.pressure import IngestPressure
from sgbridge.settings import Settings

if TYPE_CHECKING:  # imported where a role needs them: the ingest process never loads dlt or Arrow
    from sgbridge.destinations.warehouse import WarehouseDestination
    from sgbridge.inbound.suppression_lists import SuppressionWatch
    from sgbridge.sync.service import SyncScheduler
    from sgbridge.workflows.engine import WorkflowRunner
    from sgbridge.workflows.reconcile import Reconciler

log = logging.getLogger(__name__)


def _yield_to_ingest(settings: Settings, roles: frozenset[str]) -> YieldTo | None:
    """The warehouse's loads wait while the ingest process on this machine is busy (a process of
    its own under the supervisor: roles/pressure.py), for events up to the configured age."""
    bound = settings.processes.yield_to_ingest_seconds
    if not bound or "ingest" in roles:
        return None
    pressure = IngestPressure()
    if pressure.directory is None:
        return None
    busy_above = settings.processes.ingest_busy_cpu

    def busy() -> bool:
        share = pressure.cpu_share()
        return share is not None and share >= busy_above

    return YieldTo(busy, bound)


class Bridge:
    """What one process runs of the roles it was given: the journal, inbound handlers, workers.

    ``roles`` (see sgbridge.roles): ``ingest`` takes the webhooks, ``deliver`` runs the HTTP
    destinations, ``warehouse`` the event loads and the object sync, ``sync`` the object sync
    alone. Tests and the demo run them all in one process; ``sgbridge serve`` one per process.
    """

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
                 roles: frozenset[str] = IN_ONE_PROCESS, drain_seconds: float = 0.0) -> None:
        self.settings = settings
        self.roles = roles
        self.drain_seconds = drain_seconds  # on stop, how long windows under way may take to finish
        self.journal = Journal(settings.database_url, relaxed_progress="ingest" not in roles)
        self.workers: list[DeliveryWorker] = []
        self.client = httpx.AsyncClient(transport=transport, limits=httpx.Limits(max_connections=32))
        if "deliver" in roles:
            self._add_http_destinations(settings)
        self.warehouse: WarehouseDestination | None = None
        if "warehouse" in roles and settings.warehouse.enabled:
            from sgbridge.destinations.warehouse import WarehouseDestination

            self.warehouse = WarehouseDestination(settings, self.journal)
            # One window at a time: loads into one warehouse take turns anyway (a second window in
            # flight measured slower, and doubles the memory of a backlog).
            loads = settings.delivery.model_copy(update={"window_events": settings.warehouse.flush_events,
                                                         "concurrency": 1})
            self.workers.append(DeliveryWorker(self.journal, self.warehouse, loads, self.warehouse.url,
                                               pace_seconds=settings.warehouse.flush_seconds,
                                               yield_to=_yield_to_ingest(settings, roles)))
        self.sync: SyncScheduler | None = None
        wants_sync = "sync" in roles or ("warehouse" in roles and self.warehouse is not None)
        if wants_sync and settings.warehouse.enabled and settings.sync.enabled and settings.sync_sources():
            from sgbridge.sync.service import SyncScheduler

            self.sync = SyncScheduler(settings, self.journal)
        self.runner: WorkflowRunner | None = None
        self.reconciler: Reconciler | None = None
        self.suppression_watch: SuppressionWatch | None = None
        if "workflows" in roles and settings.workflows_wanted():
            self._add_workflows(settings)
        # Housekeeping (pruning, backlog gauges) runs in one role of the configured set.
        self.housekeeping = housekeeping_role(settings) in roles
        # The webhook endpoints, in the ingest role's process only (other roles answer no POST).
        self.inbound: tuple[SendGridInbound, SegmentInbound, TwilioInbound] | None = None
        if "ingest" in roles:
            self.inbound = (SendGridInbound(settings, self.journal, self.wake),
                            SegmentInbound(settings, self.journal, self.wake),
                            TwilioInbound(settings.twilio_inbound, self.journal, self.wake))
        self._tasks: list[asyncio.Task[None]] = []  # housekeeping, the object sync
        self._starting: asyncio.Task[None] | None = None
        self._delivering: list[asyncio.Task[None]] = []  # one per destination worker
        self._locks = DestinationLocks()

    def _add_http_destinations(self, settings: Settings) -> None:
        if any(settings.write_key_for(name) for name in settings.sources):
            segment = SegmentDestination(settings, self.client)
            self.workers.append(DeliveryWorker(self.journal, segment, settings.delivery, segment.url))
        else:
            log.warning("no Segment write key configured (SEGMENT_WRITE_KEY): events are stored, not forwarded")
        from sgbridge.destinations.actions import ActionsDestination

        for name, config in settings.actions.items():
            actions = ActionsDestination(name, config, self.journal, self.client)
            # Windows overlap; the destination keeps each contact's actions in order across them.
            delivery = settings.delivery.model_copy(update={"window_events": config.window_events,
                                                            "concurrency": config.windows_in_flight})
            self.workers.append(DeliveryWorker(self.journal, actions, delivery, actions.url,
                                               max_events_in_flight=config.max_events_in_flight))

    def _add_workflows(self, settings: Settings) -> None:
        from sgbridge.destinations.workflows import WorkflowIntake
        from sgbridge.journal.workflow_runs import WorkflowRuns
        from sgbridge.workflows.engine import Engine, LiveActions, WorkflowRunner

        workflows = settings.compiled_workflows()
        runs = WorkflowRuns(self.journal)
        from sgbridge.workflows.profile_api import ProfileApi

        profiles = ProfileApi(settings.workflow_engine, self.client) \
            if ProfileApi.configured(settings.workflow_engine) else None
        actions = LiveActions(workflows, settings.actions, self.journal, self.client,
                              segment_url=settings.segment.base_url(), write_key=settings.write_key_for("default"))
        engine = Engine(workflows, runs, actions, settings.workflow_engine, profiles)
        self.runner = WorkflowRunner(engine, runs, settings.workflow_engine)
        intake = WorkflowIntake(settings, workflows, self.journal, on_ready=self.runner.wake)
        # One window at a time: events reach runs in each key's order.
        delivery = settings.delivery.model_copy(update={"concurrency": 1})
        self.workers.append(DeliveryWorker(self.journal, intake, delivery, "workflows"))
        if any(r.enabled for r in settings.audience_reconcile):
            from sgbridge.workflows.reconcile import Reconciler

            self.reconciler = Reconciler(settings, self.journal, self.client)
        if settings.suppression_watch.enabled:
            from sgbridge.inbound.suppression_lists import SuppressionWatch

            self.suppression_watch = SuppressionWatch(settings, self.journal)

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def start(self) -> None:
        # Delivery starts in a task of its own: on SQLite it may first wait for another process to
        # let go of a destination, and this process must beat and answer SIGTERM meanwhile.
        self._starting = asyncio.create_task(self._start_delivery()) if self.workers else None
        if self._starting is not None:
            self._starting.add_done_callback(_report_failed_start)
        if self.housekeeping:
            self._tasks.append(asyncio.create_task(self._housekeeping()))
        if self.sync is not None:
            self._tasks.append(asyncio.create_task(self.sync.run()))
        if self.runner is not None:
            self._tasks.append(asyncio.create_task(self.runner.run()))
        if self.reconciler is not None:
            self._tasks.append(asyncio.create_task(self.reconciler.schedule()))
        if self.suppression_watch is not None:
            self._tasks.append(asyncio.create_task(self.suppression_watch.run()))

    async def _start_delivery(self) -> None:
        names = [w.destination.name for w in self.workers]
        if isinstance(self.journal.dialect, SQLiteDialect):
            # SQLite is one machine, and each destination runs in one process (journal/locks.py): once
            # this process holds their locks, claims an earlier run of them left can be retaken at once.
            if self.journal.dialect.path != ":memory:":
                await self._locks.acquire(self.journal.dialect.path, names)
            self.journal.release_claims(names)
        self._delivering = [asyncio.create_task(w.run(self.drain_seconds)) for w in self.workers]

    async def stop(self) -> None:
        for worker in self.workers:  # first: no lane claims a new window from now on
            worker.stop()
        if self.runner is not None:
            self.runner.stop()
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.suppression_watch is not None:
            self.suppression_watch.stop()
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()  # still waiting for a destination's lock: nothing is under way
        # A sync in progress stops between pages, recorded as interrupted; with a drain, it and the
        # windows under way share one deadline, so the whole stop fits the supervisor's.
        closing = [asyncio.create_task(self.sync.close())] if self.sync is not None else []
        delivering = self._delivering
        if self.drain_seconds:
            if delivering or closing:
                await asyncio.wait([*delivering, *closing], timeout=self.drain_seconds + 1)
        elif closing:
            await asyncio.gather(*closing)
        started = [self._starting] if self._starting is not None else []
        for task in (*started, *delivering, *self._tasks, *closing):
            task.cancel()
        await asyncio.gather(*started, *delivering, *self._tasks, *closing, return_exceptions=True)
        if self.warehouse is not None:
            await self.warehouse.close()
        await self.client.aclose()
        if self.inbound is not None:
            self.inbound[0].close()
        self.journal.close()
        self._locks.close()

    async def _housekeeping(self) -> None:
        names = destination_names(self.settings)  # every destination, whichever process runs it
        while True:
            try:
                stats = await self.journal.stats_async()
                for name in names:
                    metrics.BACKLOG.labels(name).set(stats["max_seq"] - stats["cursors"].get(name, 0))
                await prune(self.journal, self.settings.ingest, names)
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(30)


class BridgeApp(Starlette):
    """Starlette, with the webhook POSTs taken before the router and middleware (the hot path)."""

    bridge: Bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        inbound = self.bridge.inbound
        if scope["type"] == "http" and scope["method"] == "POST" and inbound is not None:
            path = scope["path"]
            handler: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
            if path.startswith(WEBHOOK_PATH) and SendGridInbound.source_of(path) is not None:
                handler = inbound[0]
            elif SegmentInbound.route_of(path) is not None:
                handler = inbound[1]
            elif path.rstrip("/") == TWILIO_PATH:
                handler = inbound[2]
            if handler is not None:
                try:
                    await handler(scope, receive, send)
                except Exception:
                    log.exception("inbound request failed")
                    await send_json(send, 500, {"error": "internal error; nothing was stored"})
                return
        await super().__call__(scope, receive, send)


def build_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None,
              roles: frozenset[str] = IN_ONE_PROCESS, drain_seconds: float = 0.0) -> BridgeApp:
    bridge = Bridge(settings, transport, roles, drain_seconds)
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    beat_every = settings.processes.heartbeat_seconds
    roles_here = sorted(roles)

    async def webhook_wrong_method(request: Request) -> Response:  # POSTs never get here (BridgeApp)
        return JSONResponse({"error": "use POST"}, status_code=405)

    async def healthz(request: Request) -> Response:
        roles = heartbeat.health(sorted(roles_here), beat_every)
        return JSONResponse({"status": "degraded" if roles["down"] else "ok", "database": bridge.journal.dialect.name,
                             "destinations": destination_names(settings),
                             "object_sync": settings.sync_sources() if settings.warehouse.enabled
                             and settings.sync.enabled else [], **roles})

    async def metrics_endpoint(request: Request) -> Response:
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"error": "metrics need the configured bearer token"}, status_code=401)
        return Response(generate_latest(metrics.registry()), media_type=CONTENT_TYPE_LATEST)

    console = None
    extra: list[BaseRoute] = []
    if "web" in roles and settings.console.enabled:
        from sgbridge.console.app import PREFIX, build_console

        mount, console = build_console(settings, bridge.journal)

        async def to_console(request: Request) -> Response:
            return RedirectResponse(f"{PREFIX}/", status_code=307)

        extra = [Route(PREFIX, to_console), mount]

    @contextlib.asynccontextmanager
    async def lifespan(app: BridgeApp) -> AsyncIterator[None]:
        await bridge.start()
        if console is not None:
            console.start()
        directory = heartbeat.runtime_dir()
        beating = asyncio.create_task(heartbeat.keep_beating(directory, roles_here, beat_every)) if directory else None
        try:
            yield
        finally:
            if beating is not None:
                beating.cancel()
            if console is not None:
                await console.close()
            await bridge.stop()

    app = BridgeApp(
        routes=[
            Route(WEBHOOK_PATH, webhook_wrong_method),
            Route(WEBHOOK_PATH + "/{source}", webhook_wrong_method),
            Route(TWILIO_PATH, webhook_wrong_method),
            Route("/healthz", healthz),
            Route("/metrics", metrics_endpoint),
            *extra,
        ],
        lifespan=lifespan,
    )
    app.bridge = bridge
    app.state.bridge = bridge
    app.state.console = console
    return app


def _report_failed_start(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("delivery could not start: %s", error, exc_info=error)
