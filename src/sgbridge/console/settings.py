"""The console's settings: ``[console]`` in the config file, SGBRIDGE_CONSOLE__* in the environment."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator

ROLES = ("viewer", "operator")


class ConsoleUser(BaseModel):
    """A console user kept in the config file (``sgbridge users add`` keeps them in the journal)."""

    name: str = Field(description="login name")
    role: str = Field("viewer", description="viewer (reads) or operator (also replays and cancels)")
    password_hash: SecretStr = Field(description="an argon2 hash, as `sgbridge users hash` prints it")

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return value


class ConsoleSettings(BaseModel):
    """The Event Delivery console at /ui (the `web` role): a login, then what happened to every event."""

    enabled: bool = Field(True, description="run the console (the `web` role) under `sgbridge serve`")
    port: int = Field(8081, ge=0, le=65535, description="listen port of the `web` role's process (same host "
                      "as `serve`); put it behind the TLS proxy with the ingest port (docs/operations.md)")
    session_secret: SecretStr | None = Field(None, description="key that signs session cookies; default: one "
                                             "made at first start and kept in the journal (shared by every "
                                             "web process on it)")
    session_hours: float = Field(12.0, gt=0, description="a login lasts this long")
    secure_cookies: bool | None = Field(None, description="mark cookies Secure; default: when the request came "
                                        "over HTTPS (X-Forwarded-Proto from the proxy)")
    login_failures_allowed: int = Field(5, ge=1, description="failed logins per user name and per client "
                                        "address in login_window_seconds before further tries get 429")
    login_window_seconds: float = Field(300.0, gt=0, description="window of the login rate limit")
    users: list[ConsoleUser] = Field(default_factory=list, description="users kept in the config (besides "
                                     "those `sgbridge users add` keeps in the journal)")
    search_index_path: str | None = Field(None, description="the search index (email, userId → events), a "
                                          "SQLite file of the web role's own; default: beside a SQLite "
                                          "journal, else sgbridge-search.db")
    log_search_url: str | None = Field(None, description="a link to your log search for one inbound request, "
                                       "{request_id} replaced, e.g. https://grafana.example.com/explore?query="
                                       "request_id%3D{request_id} (with log_format = \"json\")")
    page_size: int = Field(50, ge=1, le=500, description="rows per page")
