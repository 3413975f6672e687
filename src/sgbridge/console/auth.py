"""Sessions, CSRF and the login rate limit.

A session is a cookie signed with itsdangerous (name, role, CSRF token, when it began), HttpOnly,
SameSite=Strict, Secure over HTTPS, valid for ``console.session_hours``. Every POST carries the
session's CSRF token in a form field; the login form, before any session, carries the token of a
signed pre-login cookie (double submit). Failed logins are counted per user name and per client
address; past ``login_failures_allowed`` in ``login_window_seconds`` the login answers 429.
"""

from __future__ import annotations

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
    def __init__(self, secret: str, settings: ConsoleSettings, users: Users) -> None:
        self._signer = URLSafeTimedSerializer(secret, salt="sgbridge-console-session")
        self._login_signer = URLSafeTimedSerializer(secret, salt="sgbridge-console-login")
        self.settings = settings
        self.users = users
        self.max_age = int(settings.session_hours * 3600)

    def _secure(self, request: Request) -> bool:
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return request.url.scheme == "https"

    def current(self, request: Request) -> Session | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data = self._signer.loads(raw, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user = self.users.get(str(data.get("u", "")))
        began = float(data.get("t", 0))
        if user is None or began < user.sessions_after:
            return None  # removed, or a new password since
        return Session(user, str(data.get("c", "")), began)

    def begin(self, response: Response, request: Request, user: User) -> None:
        token = self._signer.dumps({"u": user.name, "r": user.role, "c": secrets.token_urlsafe(24), "t": time.time()})
        response.set_cookie(SESSION_COOKIE, token, max_age=self.max_age, path="/", httponly=True,
                            samesite="strict", secure=self._secure(request))
        response.delete_cookie(LOGIN_COOKIE, path="/")

    def end(self, response: Response) -> None:
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
    """Failed logins per key (a user name, a client address) within a sliding window."""

    def __init__(self, allowed: int, window_seconds: float) -> None:
        self.allowed = allowed
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait_seconds(self, keys: list[str], now: float | None = None) -> float:
        """0 when a try is allowed, else how long until one is."""
        now = time.time() if now is None else now
        waits = [times[0] + self.window - now for key in keys
                 if len(times := self._recent(key, now)) >= self.allowed]
        return max(waits, default=0.0)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for key in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 10_000:  # bounded: forget keys with nothing recent
            for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
                del self._failures[key]

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
