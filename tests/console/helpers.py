"""Logging in to the console as a browser does: the login form's token, then the session cookie."""

from __future__ import annotations

import re
from typing import Any

import httpx

from sgbridge.console.users import Users

PASSWORD = "correct horse battery staple"


def add_user(app: Any, name: str, role: str, password: str = PASSWORD) -> None:
    bridge = app.state.bridge
    Users(bridge.journal, bridge.settings.console).add(name, role, password)


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD,
                next_path: str = "/ui/") -> httpx.Response:
    page = await client.get("/ui/login")
    return await client.post("/ui/login", data={"csrf": form_token(page.text), "name": name, "password": password,
                                                "next": next_path})
