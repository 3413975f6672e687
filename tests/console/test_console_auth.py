"""The console's login, sessions, CSRF, roles and headers, through its HTTP interface."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from sgbridge.console.users import Users
from tests.console.helpers import PASSWORD, add_user, form_token, login

pytestmark = pytest.mark.anyio

PAGES = ["/ui/", "/ui/events", "/ui/dead-letters", "/ui/runs", "/ui/sync", "/ui/config", "/ui/tail", "/ui/events/1"]


async def test_every_page_needs_a_login(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        for path in PAGES:
            response = await h.client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/login?next=")
        assert (await h.client.post("/ui/dead-letters/replay", data={"scope": "matching"})).status_code == 401
        assert (await h.client.post("/ui/runs/1/cancel")).status_code == 401


async def test_a_wrong_password_gets_no_session_and_the_right_one_a_strict_cookie(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "alice", "viewer")
        wrong = await login(h.client, "alice", "not the password at all")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        assert "sgbridge_session" not in h.client.cookies
        unknown = await login(h.client, "mallory", PASSWORD)
        assert unknown.status_code == 401
        right = await login(h.client, "alice")
        assert right.status_code == 303 and right.headers["location"] == "/ui/"
        cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("sgbridge_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # plain HTTP here
        for path in PAGES[:-1]:
            page = await h.client.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert "alice (viewer)" in page.text


async def test_the_cookie_is_secure_over_https(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "alice", "viewer")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=h.app), base_url="https://bridge") as client:
            right = await login(client, "alice")
        cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("sgbridge_session="))
        assert "Secure" in cookie


async def test_logins_are_rate_limited(bridge_factory: Any) -> None:
    async with bridge_factory(SGBRIDGE_CONSOLE__LOGIN_FAILURES_ALLOWED="3") as h:
        add_user(h.app, "alice", "operator")
        for _ in range(3):
            assert (await login(h.client, "alice", "wrong password!!")).status_code == 401
        limited = await login(h.client, "alice")  # even the right password, now
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
        assert "sgbridge_session" not in h.client.cookies


async def test_parallel_tries_count_before_they_are_answered(bridge_factory: Any) -> None:
    import anyio

    async with bridge_factory(SGBRIDGE_CONSOLE__LOGIN_FAILURES_ALLOWED="3") as h:
        add_user(h.app, "alice", "operator")
        page = await h.client.get("/ui/login")
        token = form_token(page.text)
        codes: list[int] = []

        async def guess(i: int) -> None:
            answer = await h.client.post("/ui/login", data={"csrf": token, "name": "alice",
                                                            "password": f"guess number {i:04d}"})
            codes.append(answer.status_code)

        async with anyio.create_task_group() as tasks:
            for i in range(12):
                tasks.start_soon(guess, i)
        assert codes.count(401) <= 3 and codes.count(429) >= 9, codes


async def test_forms_without_the_csrf_token_are_refused(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "olga", "operator")
        fresh = await h.client.get("/ui/login")
        assert fresh.status_code == 200
        no_token = await h.client.post("/ui/login", data={"name": "olga", "password": PASSWORD})
        assert no_token.status_code == 403 and "sgbridge_session" not in h.client.cookies
        await login(h.client, "olga")
        for data in ({"scope": "matching"}, {"scope": "matching", "csrf": "forged"}):
            refused = await h.client.post("/ui/dead-letters/replay", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
        page = await h.client.get("/ui/dead-letters")
        accepted = await h.client.post("/ui/dead-letters/replay", data={"scope": "matching",
                                                                        "csrf": form_token(page.text)})
        assert accepted.status_code == 303


async def test_only_operators_replay_and_cancel(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "vera", "viewer")
        await login(h.client, "vera")
        page = await h.client.get("/ui/dead-letters")
        token = form_token(page.text)
        assert "Replay selected" not in page.text
        for path in ("/ui/dead-letters/replay", "/ui/runs/1/cancel"):
            refused = await h.client.post(path, data={"csrf": token, "scope": "matching"})
            assert refused.status_code == 403 and "Only operators" in refused.text


async def test_a_new_password_ends_open_sessions_and_logout_ends_this_one(bridge_factory: Any,
                                                                          database_url: str) -> None:
    async with bridge_factory(database_url) as h:
        add_user(h.app, "alice", "operator")
        await login(h.client, "alice")
        assert (await h.client.get("/ui/")).status_code == 200
        time.sleep(0.01)
        bridge = h.app.state.bridge
        Users(bridge.journal, bridge.settings.console).add("alice", "operator", "another long password", replace=True)
        assert (await h.client.get("/ui/")).status_code == 303
        await login(h.client, "alice", "another long password")
        page = await h.client.get("/ui/")
        assert page.status_code == 200
        copied = h.client.cookies["sgbridge_session"]  # what a thief would have kept
        out = await h.client.post("/ui/logout", data={"csrf": form_token(page.text)})
        assert out.status_code == 303
        assert (await h.client.get("/ui/")).status_code == 303
        h.client.cookies.set("sgbridge_session", copied)
        assert (await h.client.get("/ui/")).status_code == 303  # the session itself has ended


async def test_removing_a_user_ends_their_sessions_for_good(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "alice", "operator")
        await login(h.client, "alice")
        copied = h.client.cookies["sgbridge_session"]
        bridge = h.app.state.bridge
        users = Users(bridge.journal, bridge.settings.console)
        assert users.remove("alice")
        assert (await h.client.get("/ui/")).status_code == 303
        users.add("alice", "viewer", "her new long password")  # the same name again
        h.client.cookies.set("sgbridge_session", copied)
        assert (await h.client.get("/ui/")).status_code == 303


async def test_a_login_never_redirects_off_the_console(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        add_user(h.app, "alice", "viewer")
        for target in ("https://evil.example/", "//evil.example/ui/", "/ui/\\evil"):
            h.client.cookies.clear()
            response = await login(h.client, "alice", next_path=target)
            assert response.headers["location"] == "/ui/", target


async def test_secrets_are_masked_on_the_configuration_page(bridge_factory: Any, tmp_path: Any) -> None:
    config = tmp_path / "c.toml"
    config.write_text("""
[actions.mail]
destination = "sendgrid"
settings = { sendGridApiKey = "SG.super-secret-key-123" }
endpoint = "https://proxyuser:hunter2-proxy@proxy.example.com:8443/sg"

[actions.hook]
destination = "webhook"

[[actions.hook.subscriptions]]
action = "send"
trigger = 'type = "track"'

[actions.hook.subscriptions.mapping]
url = "https://hooks.example.com/services/T0/B0?sig=slack-signature-xyz"
method = "POST"
headers = { Cookie = "session=cookie-value-abc" }
""")
    async with bridge_factory(config=str(config), SGBRIDGE_METRICS_TOKEN="metrics-token-xyz",
                              SEGMENT_WEBHOOK_SHARED_SECRET="shared-secret-abc") as h:
        add_user(h.app, "alice", "viewer")
        await login(h.client, "alice")
        page = await h.client.get("/ui/config")
        assert page.status_code == 200
        for secret in ("SG.super-secret-key-123", "metrics-token-xyz", "shared-secret-abc", "test-write-key",
                       "hunter2-proxy", "proxyuser", "slack-signature-xyz", "cookie-value-abc"):
            assert secret not in page.text, secret
        assert "sendGridApiKey" in page.text and "proxy.example.com:8443/sg" in page.text
        assert "hooks.example.com/services/T0/B0" in page.text  # the URL is shown, its query is not


async def test_pages_carry_security_headers(bridge_factory: Any) -> None:
    async with bridge_factory() as h:
        page = await h.client.get("/ui/login")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        assert not re.search(r"(src|href)=\"https?://", page.text)  # nothing from another origin


async def test_users_cli_adds_lists_and_removes(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from sgbridge.cli import main

    monkeypatch.setenv("SGBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'u.db'}")
    runner = CliRunner()
    short = runner.invoke(main, ["users", "add", "bob", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least 12" in short.output
    added = runner.invoke(main, ["users", "add", "bob", "--role", "operator", "--password-stdin"],
                          input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    listed = runner.invoke(main, ["users", "list"])
    assert "bob" in listed.output and "operator" in listed.output and "argon2" not in listed.output
    again = runner.invoke(main, ["users", "add", "bob", "--password-stdin"], input=PASSWORD + "\n")
    assert again.exit_code != 0 and "exists" in again.output
    assert runner.invoke(main, ["users", "remove", "bob"]).exit_code == 0
    assert "no users" in runner.invoke(main, ["users", "list"]).output
    hashed = runner.invoke(main, ["users", "hash", "--password-stdin"], input=PASSWORD + "\n")
    assert hashed.output.startswith("$argon2id$")
