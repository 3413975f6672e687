"""The console's routes, mounted at ``/ui`` by sgbridge.app when the process runs the ``web`` role."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import orjson
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sgbridge.console.activity import Activity, percentile
from sgbridge.console.auth import LoginLimiter, Session, Sessions, csrf_ok, session_secret
from sgbridge.console.charts import bars
from sgbridge.console.search_index import SearchIndex, default_path
from sgbridge.console.users import Users
from sgbridge.console.views import Views, consumers, pretty, summary_of
from sgbridge.inbound.segment import SEGMENT_SOURCES
from sgbridge.journal import Journal
from sgbridge.journal.journal import redacted
from sgbridge.roles import destination_names
from sgbridge.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PREFIX = "/ui"
_SECRET_NAME = re.compile(r"key|secret|password|passwd|token|auth|cookie|credential|sig|dsn|session", re.IGNORECASE)
MASK = "••••••"
Handler = Callable[[Request, Session], Awaitable[Response]]


def iso(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S")


def masked(value: Any, name: str = "") -> Any:
    """Settings as shown: every value under a secret-looking name masked, at any depth, and in every
    URL its credentials and query (a signed webhook URL, ``?password=``)."""
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, name) for v in value]
    if value not in (None, "", False) and _SECRET_NAME.search(name):
        return MASK
    if isinstance(value, str) and "://" in value:
        return masked_url(value)
    return value


def masked_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MASK
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host + port
    return urlunsplit(parts._replace(netloc=netloc, query=MASK if parts.query else "", fragment=""))


class Console:
    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        self.views = Views(journal, settings)
        self.users = Users(journal, settings.console)
        self.sessions = Sessions(session_secret(journal, settings.console), settings.console, self.users, journal)
        self.limiter = LoginLimiter(settings.console.login_failures_allowed, settings.console.login_window_seconds)
        self.activity = Activity(journal)
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters.update(iso=iso, pretty=pretty)
        self.templates.env.globals.update(prefix=PREFIX)
        self._planner_client = httpx.AsyncClient()  # never sends: the runners below only plan
        self._planners: dict[str, Any] | None = None
        path = settings.console.search_index_path or default_path(settings.database_url)
        self.search = SearchIndex(journal, path, redacted(settings.database_url))
        self._activity_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.search.start()
        self._activity_task = asyncio.create_task(self._keep_activity())

    async def _keep_activity(self) -> None:
        """The overview's traffic, read in the background: a page only renders what is in memory."""
        while True:
            try:
                await self.activity.refresh(min_interval=0)
            except Exception:
                log.exception("console: reading the traffic failed; trying again")
            await asyncio.sleep(2.0)

    async def close(self) -> None:
        if self._activity_task is not None:
            self._activity_task.cancel()
            await asyncio.gather(self._activity_task, return_exceptions=True)
        await self.search.close()
        await self._planner_client.aclose()

    # -- rendering, authentication ------------------------------------------------------------
    def render(self, request: Request, template: str, session: Session | None, status: int = 200,
               **context: Any) -> Response:
        response = self.templates.TemplateResponse(request, template, {
            "session": session, "user": session.user if session else None, "csrf": session.csrf if session else "",
            **context}, status_code=status)
        return response

    def page(self, handler: Handler, *, operator: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await self.sessions.current(request)
            if session is None:
                if request.method == "GET":
                    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303)
                return Response("log in first", status_code=401)
            if request.method == "POST":
                form = await request.form()
                if not csrf_ok(session, _text(form, "csrf")):
                    return Response("the form's CSRF token is missing or wrong: reload the page", status_code=403)
                if operator and not session.user.operator:
                    return self.render(request, "message.html", session, 403, title="Not allowed",
                                       message="Only operators replay dead letters and cancel runs.")
            return await handler(request, session)

        return endpoint

    async def login_form(self, request: Request) -> Response:
        if await self.sessions.current(request) is not None:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        response = HTMLResponse("")
        token = self.sessions.login_token(request, response)
        page = self.render(request, "login.html", None, login_csrf=token, error=None,
                           next=_safe_next(request.query_params.get("next")), no_users=not self.users.list())
        for name, value in response.headers.items():
            if name == "set-cookie":
                page.headers.append("set-cookie", value)
        return page

    async def login(self, request: Request) -> Response:
        form = await request.form()
        name, password = _text(form, "name").strip()[:64], _text(form, "password")
        client = request.client.host if request.client else "?"
        keys = [f"user:{name.lower()}", f"addr:{client}"]  # the user name's first: succeeded() forgets it
        wait = self.limiter.wait_seconds(keys)

        def again(error: str, status: int) -> Response:
            response = HTMLResponse("")
            token = self.sessions.login_token(request, response)
            page = self.render(request, "login.html", None, status, login_csrf=token, error=error,
                               next=_safe_next(_text(form, "next")), no_users=False)
            for header, value in response.headers.items():
                if header == "set-cookie":
                    page.headers.append("set-cookie", value)
            if status == 429:
                page.headers["Retry-After"] = str(int(wait) + 1)
            return page

        if not self.sessions.login_token_matches(request, _text(form, "csrf")):
            return again("The form expired: try again.", 403)
        if wait > 0:
            log.warning("console: login refused for %r from %s: too many failures", name, client)
            return again(f"Too many failed logins: try again in {int(wait) + 1} s.", 429)
        stamp = self.limiter.attempt(keys)  # counted before the check: parallel tries are counted too
        user = await asyncio.to_thread(self.users.authenticate, name, password)
        if user is None:
            log.warning("console: failed login for %r from %s", name, client)
            return again("Wrong user name or password.", 401)
        self.limiter.succeeded(keys, stamp)
        log.info("console: %s logged in from %s", name, client)
        response = RedirectResponse(_safe_next(_text(form, "next")), status_code=303)
        await self.sessions.begin(response, request, user)
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        await self.sessions.end(session, response)
        log.info("console: %s logged out", session.user.name)
        return response

    # -- pages --------------------------------------------------------------------------------
    async def overview(self, request: Request, session: Session) -> Response:
        if self._activity_task is None:  # not started (a test's app without its lifespan): read now
            await self.activity.refresh()
        progress = await self.views.progress()
        dead = await self.views.dead_letter_counts()
        sources = []
        for name in sorted(set(self.activity.inbound) | set(self.settings.sources) | {"segment"}):
            series = self.activity.series(self.activity.inbound.get(name, {}))
            last = [m for _, m in series]
            sources.append({"name": name, "chart": bars([m.events for m in last], title=f"{name}: events in / min"),
                            "last_minute": last[-1].events, "last_hour": sum(m.events for m in last),
                            "requests": sum(m.requests for m in last)})
        destinations = []
        for name in destination_names(self.settings) + sorted(set(self.activity.outbound) - set(
                destination_names(self.settings))):
            minutes = [m for _, m in self.activity.series(self.activity.outbound.get(name, {}))]
            attempts = sum(m.requests for m in minutes)
            delivered = sum(m.delivered for m in minutes)
            durations = [d for m in minutes for d in m.durations]
            latencies = [v for m in minutes for v in m.latencies]
            state = progress.get(name, {})
            destinations.append({
                "name": name,
                "chart": bars([m.events for m in minutes], title=f"{name}: events out / min",
                              color="#2a9d55", bad=[m.retries + m.rejected for m in minutes]),
                "events": sum(m.events for m in minutes), "attempts": attempts,
                "success": None if not attempts else 100.0 * delivered / attempts,
                "retries": sum(m.retries for m in minutes), "rejected": sum(m.rejected for m in minutes),
                "p50": percentile(durations, 0.5), "p99": percentile(durations, 0.99),
                "lat50": percentile(latencies, 0.5), "lat99": percentile(latencies, 0.99),
                "dead_letters": dead.get(name, 0), "backlog": state.get("backlog_upper"),
                "lag": state.get("lag_seconds"), "cursor": state.get("cursor")})
        return self.render(request, "overview.html", session, sources=sources, destinations=destinations,
                           now=time.time())

    async def events(self, request: Request, session: Session) -> Response:
        params = request.query_params
        ref, source, since = params.get("q", "").strip(), params.get("source") or None, params.get("since", "")
        email, user, message = (params.get(k, "").strip() for k in ("email", "user", "message"))
        before = _int(params.get("before"))
        limit = self.settings.console.page_size
        error, rows, mode = None, [], "latest"
        next_before: int | None = None
        try:
            if email or user or message:
                mode = "key"
                kind, value = ("email", email) if email else ("user", user) if user else ("message", message)
                found = await self.search.seqs(kind, value, before=before, limit=limit)
                rows = await self.views.events(seqs=found, limit=limit)
                # Paged by what the index found: events pruned from the log since would shorten pages.
                next_before = found[-1] if len(found) == limit else None
            elif ref:
                mode = "lookup"
                rows = await self.views.events(seqs=await self.views.find(ref), limit=limit)
            elif since:
                mode = "since"
                start = _parse_time(since)
                after = _int(params.get("after")) or await self.views.seq_at(start)
                rows = await self.views.events(after=after, source=source, limit=limit)
            else:
                rows = await self.views.events(before=before, source=source, limit=limit)
        except ValueError as exc:
            error = str(exc)
        more = next_before is not None if mode == "key" else (len(rows) == limit and mode != "lookup")
        if mode == "latest" and rows:
            next_before = rows[-1]["seq"]
        return self.render(request, "events.html", session, next_before=next_before, rows=rows, ref=ref,
                           source=source or "", since=since,
                           email=email, user_text=user, message=message, mode=mode, more=more, error=error,
                           index=await self.search.status(),
                           sources=sorted({*self.settings.sources, *SEGMENT_SOURCES}))

    async def event(self, request: Request, session: Session) -> Response:
        seq = _int(request.path_params["seq"])
        found = await self.views.event(seq) if seq is not None else None
        if found is None:
            return self.render(request, "message.html", session, 404, title="No such event",
                               message=f"No stored event {request.path_params['seq']!r} (it may be past retention).")
        mapped = await asyncio.to_thread(self._mapped, found)
        template = self.settings.console.log_search_url
        logs = template.replace("{request_id}", str(found["request"]["id"])) if template else None
        return self.render(request, "event.html", session, e=found, mapped=mapped, log_link=logs,
                           json_logs=self.settings.log_format == "json",
                           raw=found["raw"].decode("utf-8", "replace"), summary=summary_of(found["raw"]))

    def _mapped(self, found: dict[str, Any]) -> dict[str, Any]:
        """The message each destination that reads the event makes of it, as sgbridge maps it now."""
        out: dict[str, Any] = {}
        try:
            event = orjson.loads(found["raw"])
        except orjson.JSONDecodeError:
            return {"*": "the stored body is not JSON"}
        source = found["source"]
        if source not in SEGMENT_SOURCES and source in self.settings.sources:
            from sgbridge.routing.sendgrid_to_segment import to_segment_track

            config = self.settings.sources[source]
            mapped = to_segment_track(event, key=found["key"], received_at=found["received_at"],
                                      selected=frozenset(config.events), user_id_arg=config.user_id_arg)
            out["segment"] = mapped if isinstance(mapped, dict) else f"not sent: {mapped.reason}"
        if source in SEGMENT_SOURCES:
            for name, runner in self._action_planners().items():
                try:
                    planned = runner.plan(found["seq"], event)
                except Exception as exc:  # shown, never raised: a page must render
                    out[name] = f"could not plan: {exc}"
                    continue
                if planned.invalid is not None:
                    out[name] = f"rejected: {planned.invalid}"
                elif planned.skipped and not planned.operations:
                    out[name] = f"dropped: {planned.skipped}"
                elif not planned.operations:
                    out[name] = "no subscription's trigger matches"
                else:
                    out[name] = planned.operations
        return out

    def _action_planners(self) -> dict[str, Any]:
        if self._planners is None:
            from sgbridge.actions.runner import ActionRunner, check_subscription

            self._planners = {}
            for name, config in self.settings.actions.items():
                subs = [check_subscription(f"actions.{name}.subscriptions[{i}]", config.destination, s.action,
                                           s.mapping, s.trigger, s.use_defaults, enable_batching=s.enable_batching)
                        for i, s in enumerate(config.subscriptions) if s.enabled]
                self._planners[name] = ActionRunner(config.destination, config.api_settings(), subs,
                                                    self._planner_client, endpoint=config.endpoint)
        return self._planners

    async def dead_letters(self, request: Request, session: Session) -> Response:
        params = request.query_params
        destination, reason = params.get("destination") or None, params.get("reason") or None
        limit = self.settings.console.page_size
        rows = await self.views.dead_letters(destination=destination, reason=reason, after=_int(params.get("after")),
                                             limit=limit)
        counts = await self.views.dead_letter_counts()
        return self.render(request, "dead_letters.html", session, rows=rows, destination=destination or "",
                           reason=reason or "", more=len(rows) == limit, counts=counts,
                           replayed=_int(params.get("replayed")))

    async def replay(self, request: Request, session: Session) -> Response:
        form = await request.form()
        destination, reason = _text(form, "destination") or None, _text(form, "reason") or None
        if _text(form, "scope") == "matching":
            count = await self.views.replay(None, destination=destination, reason=reason)
        else:
            ids = [i for i in (_int(v) for v in form.getlist("id")) if i is not None]
            count = await self.views.replay(ids)
        log.info("console: %s queued %d dead letter(s) for replay", session.user.name, count)
        query = urlencode({"replayed": count, **{k: v for k, v in (("destination", destination),
                                                                    ("reason", reason)) if v}})
        return RedirectResponse(f"{PREFIX}/dead-letters?{query}", status_code=303)

    async def runs(self, request: Request, session: Session) -> Response:
        params = request.query_params
        workflow, state = params.get("workflow") or None, params.get("state") or None
        limit = self.settings.console.page_size
        rows = await self.views.runs(workflow=workflow, state=state, before=_int(params.get("before")), limit=limit)
        timers = await self.views.timers()
        return self.render(request, "runs.html", session, rows=rows, timers=timers, workflow=workflow or "",
                           state=state or "", more=len(rows) == limit,
                           workflows=[w.name for w in self.settings.workflows], now=time.time())

    async def run(self, request: Request, session: Session) -> Response:
        run_id = _int(request.path_params["run"])
        found = await self.views.run(run_id) if run_id is not None else None
        if found is None:
            return self.render(request, "message.html", session, 404, title="No such run",
                               message=f"No workflow run {request.path_params['run']!r}.")
        return self.render(request, "run.html", session, r=found, cancelled=request.query_params.get("cancelled"))

    async def cancel(self, request: Request, session: Session) -> Response:
        run_id = _int(request.path_params["run"])
        done = run_id is not None and await self.views.cancel(run_id)
        log.info("console: %s cancelled run %s: %s", session.user.name, run_id, done)
        return RedirectResponse(f"{PREFIX}/runs/{run_id}?cancelled={'yes' if done else 'no'}", status_code=303)

    async def sync_runs(self, request: Request, session: Session) -> Response:
        rows = await self.views.sync_runs()
        return self.render(request, "sync.html", session, rows=rows)

    async def config(self, request: Request, session: Session) -> Response:
        shown = masked(self.settings.model_dump(mode="json"))
        shown["database_url"] = masked_url(self.settings.database_url) if "://" in self.settings.database_url \
            else self.settings.database_url
        return self.render(request, "config.html", session, config=shown, consumers=sorted(consumers(self.settings)))

    async def tail(self, request: Request, session: Session) -> Response:
        return self.render(request, "tail.html", session, sources=sorted({*self.settings.sources, *SEGMENT_SOURCES}))

    async def tail_stream(self, request: Request, session: Session) -> Response:
        """Server-sent events: each new stored event that matches the filter, as JSON."""
        source = request.query_params.get("source") or None
        needle = (request.query_params.get("filter") or "").lower()
        resume = _int(request.headers.get("last-event-id"))  # a reconnecting browser says where it was
        if resume is None:
            start = await self.journal.run(lambda conn: int(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
                                                            or 0))
            resume = max(0, start - 20)  # the last few, so the page is not empty
        last = resume

        async def stream() -> AsyncIterator[bytes]:
            nonlocal last
            yield b"retry: 2000\n\n"
            idle, checked = 0.0, time.monotonic()
            while not await request.is_disconnected():
                if time.monotonic() - checked > 5:  # a logout, a new password or a removal ends the tail too
                    checked = time.monotonic()
                    if await self.sessions.current(request) is None:
                        yield b"event: ended\ndata: the session has ended\n\n"
                        return
                rows = await self.views.events(after=last + 1, source=source, limit=200)
                for row in rows:
                    last = max(last, row["seq"])
                    text = " ".join(str(row.get(k, "")) for k in ("event", "id", "email", "user_id", "source"))
                    if needle and needle not in text.lower():
                        continue
                    yield (f"id: {row['seq']}\n".encode() + b"data: "
                           + orjson.dumps({**row, "at": iso(row["received_at"])}) + b"\n\n")
                if rows:
                    idle = 0.0
                    continue
                idle += 0.5
                if idle >= 15:
                    yield f"id: {last}\n: keep-alive\n\n".encode()
                    idle = 0.0
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 2**63 else None


def _safe_next(value: str | None) -> str:
    """Only a path of the console: never another site (an open redirect)."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


def _parse_time(text: str) -> float:
    """A Unix time, or an ISO 8601 time (UTC when it names no zone)."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use 2026-12-06T10:00 (UTC) or a Unix time") from None
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()


class SecurityHeaders:
    """No framing, no sniffing, nothing from another origin, no caching of pages."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
                             b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
                            (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin")]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def build_console(settings: Settings, journal: Journal) -> tuple[Mount, Console]:
    console = Console(settings, journal)
    page = console.page
    routes = [
        Route("/", page(console.overview)),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", page(console.logout), methods=["POST"]),
        Route("/events", page(console.events)),
        Route("/events/{seq}", page(console.event)),
        Route("/dead-letters", page(console.dead_letters)),
        Route("/dead-letters/replay", page(console.replay, operator=True), methods=["POST"]),
        Route("/runs", page(console.runs)),
        Route("/runs/{run}", page(console.run)),
        Route("/runs/{run}/cancel", page(console.cancel, operator=True), methods=["POST"]),
        Route("/sync", page(console.sync_runs)),
        Route("/config", page(console.config)),
        Route("/tail", page(console.tail)),
        Route("/tail/stream", page(console.tail_stream)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    inner = Starlette(routes=routes)
    return Mount(PREFIX, app=SecurityHeaders(inner)), console
