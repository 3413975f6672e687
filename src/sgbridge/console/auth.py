"""Sessions, CSRF and the login rate limit.

A session is a row of the journal's ``console_sessions`` (its id, user, expiry) and a cookie signed
with itsdangerous that names it (with its CSRF token): HttpOnly, SameSite=Strict, Secure over
HTTPS, valid for ``console.session_hours``. Logout deletes the row, so a copied cookie is worth
nothing after it; a new password or a removal deletes all of the user's. Every POST carries the
session's CSRF token in a form field; the login form, before any session, carries the token of a
signed pre-login cookie (double submit). Failed logins are counted per user name and per client
address; past ``login_failures_allowed`` in ``login_window_seconds`` the login answers 429.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from sgbridge.console.settings import ConsoleSettings
from sgbridge.console.users import User, Users
from sgbridge.journal import Journal

SESSION_COOKIE = "sgbridge_session"
LOGIN_COOKIE = "sgbridge_login"
_SECRET_KEY = "console_session_secret"  # noqa: S105 - the meta row's name, not a secret


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    began: float
    id: str


def session_secret(journal: Journal, settings: ConsoleSettings) -> str:
    """The configured secret, else the journal's (made once, by the first process to start)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    q, made = journal.q, secrets.token_urlsafe(32)

    def job(conn: Any) -> str:
        conn.execute(q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING"), (_SECRET_KEY, made))
        return str(conn.execute(q("SELECT value FROM meta WHERE key = ?"), (_SECRET_KEY,)).fetchone()[0])

    return journal.run_sync(job)


class Sessions:
    def __init__(self, secret: str, settings: ConsoleSettings, users: Users, journal: Journal) -> None:
        self.journal = journal
        self._signer = URLSafeTimedSerializer(secret, salt="sgbridge-console-session")
        self._login_signer = URLSafeTimedSerializer(secret, salt="sgbridge-console-login")
        self.settings = settings
        self.users = users
        self.max_age = int(settings.session_hours * 3600)

    def _secure(self, request: Request) -> bool:
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return request.url.scheme == "https"

    def _signed(self, request: Request) -> dict[str, Any] | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("s"), str) else None

    async def current(self, request: Request) -> Session | None:
        data = self._signed(request)
        if data is None:
            return None
        sid, q, now = str(data["s"]), self.journal.q, time.time()
        row = await self.journal.run(lambda conn: conn.execute(q(
            "SELECT name, created_at FROM console_sessions WHERE id = ? AND expires_at > ?"), (sid, now)).fetchone())
        if row is None:
            return None  # logged out, a new password, removed, or expired
        user = self.users.get(str(row[0]))
        if user is None:
            return None
        return Session(user, str(data.get("c", "")), float(row[1]), sid)

    async def begin(self, response: Response, request: Request, user: User) -> None:
        sid, now, q = secrets.token_urlsafe(24), time.time(), self.journal.q

        def job(conn: Any) -> None:
            conn.execute(q("DELETE FROM console_sessions WHERE expires_at <= ?"), (now,))
            conn.execute(q("INSERT INTO console_sessions (id, name, created_at, expires_at) VALUES (?, ?, ?, ?)"),
                         (sid, user.name, now, now + self.max_age))

        await self.journal.run(job)
        token = self._signer.dumps({"s": sid, "c": secrets.token_urlsafe(24)})
        response.set_cookie(SESSION_COOKIE, token, max_age=self.max_age, path="/", httponly=True,
                            samesite="strict", secure=self._secure(request))
        response.delete_cookie(LOGIN_COOKIE, path="/")

    async def end(self, session: Session, response: Response) -> None:
        q = self.journal.q
        await self.journal.run(lambda conn: conn.execute(q("DELETE FROM console_sessions WHERE id = ?"),
                                                         (session.id,)))
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    def login_token(self, request: Request, response: Response) -> str:
        """The pre-login CSRF token: the cookie's, or a new one set on ``response``."""
        raw = request.cookies.get(LOGIN_COOKIE)
        if raw:
            try:
                return str(self._login_signer.loads(raw, max_age=3600))
            except BadSignature:
                pass
        token = secrets.token_urlsafe(24)
        response.set_cookie(LOGIN_COOKIE, self._login_signer.dumps(token), max_age=3600, path="/", httponly=True,
                            samesite="strict", secure=self._secure(request))
        return token

    def login_token_matches(self, request: Request, given: str) -> bool:
        raw = request.cookies.get(LOGIN_COOKIE)
        if not raw or not given:
            return False
        try:
            expected = str(self._login_signer.loads(raw, max_age=3600))
        except BadSignature:
            return False
        return hmac.compare_digest(expected.encode(), given.encode())


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())


class LoginLimiter:
    """Login tries per key (a user name, a client address) within a sliding window. A try counts
    from the moment it starts (``attempt``), so parallel tries are counted before any is answered;
    a successful one is taken back (``succeeded``)."""

    MAX_KEYS = 10_000

    def __init__(self, allowed: int, window_seconds: float) -> None:
        self.allowed = allowed
        self.window = window_seconds
        self._tries: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> int:
        times = self._tries.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._tries[key]
            return 0
        return len(times)

    def wait_seconds(self, keys: list[str], now: float | None = None) -> float:
        """0 when a try is allowed, else how long until one is (reading never stores a key)."""
        now = time.time() if now is None else now
        waits = [self._tries[key][0] + self.window - now for key in keys if self._recent(key, now) >= self.allowed]
        return max(waits, default=0.0)

    def attempt(self, keys: list[str], now: float | None = None) -> float:
        """Count a try now (before its password is checked); returns its stamp."""
        now = time.time() if now is None else now
        if len(self._tries) >= self.MAX_KEYS:  # bounded: forget keys with nothing recent
            for key in list(self._tries):
                self._recent(key, now)
        for key in keys:
            self._tries.setdefault(key, deque()).append(now)
        return now

    def succeeded(self, keys: list[str], stamp: float) -> None:
        """Take a try back that turned out right; the user name's earlier failures are forgotten."""
        for index, key in enumerate(keys):
            if index == 0:
                self._tries.pop(key, None)
            elif key in self._tries:
                with contextlib.suppress(ValueError):
                    self._tries[key].remove(stamp)
