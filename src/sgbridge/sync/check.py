"""``sgbridge check``: is the API key valid, and may it read what the sync reads?

Segment's troubleshooting for its SendGrid source starts with "Invalid Credentials": a key with a
stray space, a revoked key, a key without the right permissions. This asks SendGrid itself:
``GET /v3/scopes`` (a 401 means the key is not valid), then compares the scopes with what each
configured collection needs, and tries one Marketing Campaigns read to tell an account without
Marketing Campaigns (those collections then sync zero rows) from a key without the scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgbridge.settings import Settings
from sgbridge.sync.api import AccessDenied, InvalidCredentials, SyncApi, SyncApiError
from sgbridge.sync.collections import COLLECTIONS


@dataclass
class CheckReport:
    source: str
    endpoint: str
    valid: bool = False
    scopes: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # collection -> scopes, any one would do
    marketing_campaigns: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.valid and not self.missing and not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "endpoint": self.endpoint, "valid": self.valid, "ok": self.ok,
                "scopes": self.scopes, "missing": self.missing, "marketing_campaigns": self.marketing_campaigns,
                "problems": self.problems}

    def lines(self) -> list[str]:
        out = [f"source {self.source} ({self.endpoint})"]
        if not self.valid:
            return out + [f"  ✗ {p}" for p in self.problems]
        out.append(f"  ✓ the API key is valid ({len(self.scopes)} scopes)")
        for name, needed in self.missing.items():
            out.append(f"  ✗ {name}: the key lacks {' or '.join(needed)}")
        if self.marketing_campaigns is False:
            out.append("  ! Marketing Campaigns is not available to this key or account: lists, segments, "
                       "recipients, campaigns and field_definitions will report zero data synced")
        out += [f"  ✗ {p}" for p in self.problems]
        if self.ok:
            out.append("  ✓ every configured collection can be synced")
        return out


def check_source(settings: Settings, source: str, api: SyncApi | None = None) -> CheckReport:
    config = settings.sources[source]
    report = CheckReport(source, config.api_base_url())
    if config.api_key is None and api is None:
        report.problems.append("no API key configured (SENDGRID_API_KEY, or sources.<name>.api_key)")
        return report
    key = config.api_key.get_secret_value() if config.api_key else ""
    client = api or SyncApi(key, config.api_base_url(), max_attempts=3,
                            timeout_seconds=settings.sync.request_timeout_seconds)
    try:
        _check(client, settings, report)
    finally:
        if api is None:
            client.close()
    return report


def _check(api: SyncApi, settings: Settings, report: CheckReport) -> None:
    try:
        data = api.get("/v3/scopes")
    except InvalidCredentials as exc:
        report.problems.append(f"Invalid credentials: SendGrid refused the API key ({exc}). Check for spaces "
                               "copied with it, and that the key was not deleted (Settings > API Keys)")
        return
    except SyncApiError as exc:
        report.problems.append(f"could not reach SendGrid: {exc}")
        return
    report.valid = True
    scopes = data.get("scopes") if isinstance(data, dict) else None
    report.scopes = sorted(str(s) for s in scopes or [])
    held = set(report.scopes)
    for name in settings.sync.collections:
        needed = COLLECTIONS[name].scopes
        if held.isdisjoint(needed):
            report.missing[name] = list(needed)
    if "marketing.read" in held:
        try:
            api.get("/v3/marketing/field_definitions")
            report.marketing_campaigns = True
        except AccessDenied:
            report.marketing_campaigns = False
        except SyncApiError as exc:
            report.problems.append(f"Marketing Campaigns read failed: {exc}")
