"""Typed settings: a TOML file, overridden by environment variables.

Precedence (highest first): ``SGBRIDGE_*`` variables (nested with ``__``, e.g.
``SGBRIDGE_DELIVERY__MAX_AGE_SECONDS``), the documented short variables
(``SENDGRID_WEBHOOK_PUBLIC_KEY``, ``SEGMENT_WRITE_KEY``, ...), the config file, the defaults.
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from sgbridge.console.settings import ConsoleSettings
from sgbridge.inbound.twilio import TwilioInboundSettings
from sgbridge.roles.settings import ProcessSettings
from sgbridge.workflows.settings import (
    AudienceReconcileSettings,
    SuppressionWatchSettings,
    WorkflowEngineSettings,
    WorkflowSettings,
)

SENDGRID_HOSTS = {"us": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}
SEGMENT_HOSTS = {"us": "https://api.segment.io", "eu": "https://events.eu1.segmentapis.com"}

# Event selection names: the Event Webhook's own `event` values, plus `machine_open` for
# Apple MPP opens (the native integration lets users pick those separately).
SELECTABLE_EVENTS = (
    "processed", "delivered", "open", "machine_open", "click", "dropped", "bounce",
    "deferred", "unsubscribe", "group_unsubscribe", "group_resubscribe", "spamreport",
)
# The names SendGrid's own integration API uses (tsg_integrations_v3 `email_events`).
EVENT_ALIASES = {"drop": "dropped", "machine_opened": "machine_open", "spam_report": "spamreport"}
# The object sync's collections, in the order a run takes them (sgbridge.sync.collections).
SYNC_COLLECTIONS = (
    "lists", "segments", "recipients", "campaigns", "field_definitions", "unsubscribe_groups",
    "unsubscribe_group_members", "global_unsubscribes", "bounces", "blocks", "spam_reports", "invalid_emails",
)
# As in the native integration, `deferred` is off unless asked for.
DEFAULT_EVENTS = [e for e in SELECTABLE_EVENTS if e != "deferred"]


def _list_from_env(value: Any) -> Any:
    """Environment variables may hold a list as JSON or as comma-separated words."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSettings(_Section):
    """One SendGrid Event Webhook (one account or one of its webhooks)."""

    public_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="base64 DER keys, as SendGrid shows them")
    unsigned: bool = Field(False, description="accept unsigned posts; only for trusted networks")
    events: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        description="events forwarded to Segment: " + ", ".join(SELECTABLE_EVENTS) + " (deferred off by default)")
    segment_write_key: SecretStr | None = Field(None, description="overrides segment.write_key")
    warehouse_dataset: str | None = Field(None, description="warehouse dataset (schema) of this source's events "
                                          "(default: the source's name; 'sendgrid' for the default source)")
    user_id_arg: str | None = Field("segment_user_id", description="custom arg whose value becomes userId "
                                    "(sgbridge's sendEmail action sets segment_user_id)")
    timestamp_tolerance_seconds: int | None = Field(None, ge=1)
    api_key: SecretStr | None = Field(None, description="SendGrid API key of this account, for the object sync and "
                                      "`sgbridge check` (SENDGRID_API_KEY for the default source); read access "
                                      "to Marketing and Suppressions is enough")
    api_region: Literal["us", "eu"] = Field("us", description="api.sendgrid.com or api.eu.sendgrid.com")
    api_endpoint: str | None = Field(None, description="SendGrid API base URL override, e.g. the emulator "
                                     "(SENDGRID_API_ENDPOINT for the default source)")
    sync: bool = Field(True, description="sync this account's objects to the warehouse when it has an api_key")

    @field_validator("api_key", mode="before")
    @classmethod
    def _trim_key(cls, value: Any) -> Any:
        # Keys pasted from the SendGrid UI often carry a trailing space or newline (Segment's
        # troubleshooting names it): an API key never contains whitespace.
        return value.strip() if isinstance(value, str) else value

    def api_base_url(self) -> str:
        return (self.api_endpoint or SENDGRID_HOSTS[self.api_region]).rstrip("/")

    @field_validator("public_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _list_from_env(value)

    @field_validator("events", mode="before")
    @classmethod
    def _normalise_events(cls, value: Any) -> Any:
        value = _list_from_env(value)
        if isinstance(value, list):
            names = [EVENT_ALIASES.get(str(e), str(e)) for e in value]
            unknown = sorted(set(names) - set(SELECTABLE_EVENTS))
            if unknown:
                raise ValueError(f"unknown event names {unknown}; choose from {list(SELECTABLE_EVENTS)}")
            return names
        return value


class SegmentSettings(_Section):
    write_key: SecretStr | None = Field(None, description="Segment source write key (SEGMENT_WRITE_KEY)")
    region: Literal["us", "eu"] = Field("us", description="api.segment.io or events.eu1.segmentapis.com")
    endpoint: str | None = Field(None, description="base URL override (emulator or proxy)")
    max_batch_events: int = Field(2500, ge=1, le=2500, description="events per /v1/batch request (Segment: 2,500)")
    max_batch_bytes: int = Field(500_000, ge=1024, le=500_000, description="bytes per request (Segment: 500 KB)")
    max_event_bytes: int = Field(32 * 1024, ge=256, le=32 * 1024, description="larger events are rejected alone")
    timeout_seconds: float = Field(15.0, gt=0, description="per request")

    def base_url(self) -> str:
        return (self.endpoint or SEGMENT_HOSTS[self.region]).rstrip("/")


class SegmentInboundSettings(_Section):
    """Segment events sent to sgbridge: by Segment's Webhooks destination or straight from its SDKs."""

    shared_secret: SecretStr | None = Field(
        None, description="Webhooks destination shared secret: X-Signature is checked against it "
                          "(SEGMENT_WEBHOOK_SHARED_SECRET)")
    unsigned: bool = Field(False, description="accept /webhooks/segment without X-Signature (trusted networks)")
    header_name: str = Field("Authorization", min_length=1, description="the custom header set in Segment's "
                             "Webhooks destination (its Headers field) that carries header_secret")
    header_secret: SecretStr | None = Field(
        None, description="the whole value that header must have, e.g. `Bearer <random>` "
                          "(SEGMENT_WEBHOOK_HEADER_SECRET); compared in constant time. It authenticates the "
                          "whole request, so batches are trusted whole; with shared_secret set too, both must match")
    accept_unsigned_batch_elements: bool = Field(
        False, description="without header_secret, store the events after the first of a batch although "
                           "X-Signature covers only the first (anyone holding one signed event could add "
                           "events to it); off: such batches are refused (403)")
    write_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="write keys accepted by the Tracking API endpoints /v1/* "
                                          "(SGBRIDGE_INBOUND_WRITE_KEYS, comma-separated)")

    @field_validator("write_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        return _list_from_env(value)


class DeliverySettings(_Section):
    window_events: int = Field(5000, ge=1, description="events claimed per unit of work")
    concurrency: int = Field(4, ge=1, description="windows in flight per process")
    max_age_seconds: float = Field(3 * 86400, gt=0, description="older undelivered events are rejected")
    backoff_initial_seconds: float = Field(0.5, gt=0, description="first retry delay; doubles per failure")
    backoff_max_seconds: float = Field(300.0, gt=0, description="longest retry delay (Retry-After may ask more)")
    lease_seconds: float = Field(60.0, gt=1, description="claims of a dead process are taken over after this")
    poll_seconds: float = Field(0.05, gt=0, description="idle poll interval (new events wake workers at once)")


class IngestSettings(_Section):
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger webhook bodies get 413")
    dedupe_window_seconds: float = Field(4 * 86400, ge=3600, description="at least 4 days by default")
    retention_seconds: float = Field(7 * 86400, ge=3600, description="delivered events kept for tracing")


class WarehouseSettings(_Section):
    """SendGrid events appended to warehouse tables through dlt (Segment's classic SendGrid source)."""

    enabled: bool = Field(True, description="load SendGrid events into the warehouse")
    destination: str = Field("duckdb", description="any dlt destination: duckdb, postgres, bigquery, snowflake…")
    credentials: SecretStr | None = Field(None, description="duckdb: the file (default: sgbridge.duckdb beside the "
                                          "SQLite journal); postgres: postgresql://user:pass@host/db; others: "
                                          "as dlt takes them (or dlt's own DESTINATION__* variables)")
    pipelines_dir: str | None = Field(None, description="dlt's working folder (default: sgbridge-dlt beside the "
                                      "warehouse file or the journal); it holds interrupted loads until finished")
    flush_seconds: float = Field(5.0, ge=0, description="a smaller batch waits this long for more events")
    flush_events: int = Field(200_000, ge=1, description="most events per load: larger loads cost less per event "
                              "(dlt's fixed cost per load, DuckDB's small inserts); the bodies are read a chunk "
                              "at a time, so memory hardly depends on it (the warehouse process peaks at "
                              "~450 MB, of which ~150 MB are dlt, Arrow and DuckDB themselves)")
    duckdb_memory_limit: str = Field("128MB", description="DuckDB's memory limit while loading (it spills to "
                                     "disk beyond it); DuckDB's own default is 80% of RAM")


class SyncSettings(_Section):
    """SendGrid objects (lists, segments, contacts, single sends, suppressions) synced to the warehouse."""

    enabled: bool = Field(True, description="`serve` syncs every source that has an api_key on a schedule")
    interval_seconds: float = Field(3 * 3600, ge=60, description="one run per interval (Segment's source: 3 hours); "
                                    "with several processes on PostgreSQL, one of them runs it")
    collections: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(SYNC_COLLECTIONS), description="what to sync: " + ", ".join(SYNC_COLLECTIONS))
    export_timeout_seconds: float = Field(3600.0, gt=0, description="longest wait for the contacts export job")
    export_poll_seconds: float = Field(2.0, gt=0, description="first wait between export status checks (grows)")
    request_timeout_seconds: float = Field(60.0, gt=0, description="per API request")
    max_attempts: int = Field(8, ge=1, description="tries per request on 429, 5xx and network errors")
    stale_after_seconds: float = Field(300.0, ge=1, description="a run that has not reported for this long is "
                                       "taken as dead (killed): shown as interrupted, and its slot is run again")
    lock_wait_seconds: float = Field(600.0, ge=0, description="DuckDB: how long a load waits for another process "
                                     "(serve, or sgbridge sync) to release the file")

    @field_validator("collections", mode="before")
    @classmethod
    def _known_collections(cls, value: Any) -> Any:
        value = _list_from_env(value)
        if isinstance(value, list):
            unknown = sorted(set(map(str, value)) - set(SYNC_COLLECTIONS))
            if unknown:
                raise ValueError(f"unknown collections {unknown}; choose from {list(SYNC_COLLECTIONS)}")
        return value


class SubscriptionSettings(_Section):
    """One configured action, as in Segment's UI: the action, when it runs, how fields are filled."""

    action: str = Field(description="the action's key, e.g. updateUserProfile, sendEmail, syncAudience")
    trigger: str | None = Field(None, description="Segment subscription syntax, e.g. type = \"identify\" "
                                                  "(default: the action's own default trigger, if any)")
    mapping: dict[str, Any] = Field(default_factory=dict, description="field mappings as in Segment "
                                    "(@path, @if, @template…); fields left out take the action's defaults")
    use_defaults: bool = Field(True, description="merge the action's default field mappings (useDefaultMappings)")
    enabled: bool = Field(True, description="a disabled subscription is validated but never runs")
    enable_batching: bool = Field(True, description="for an action with a batch mode (webhook send), Segment's "
                                  "'Enable Batching': every request's body is a JSON array of events, one event "
                                  "included (performBatch); false sends one request per event, its body the event")


class ActionDestinationSettings(_Section):
    """A Segment-style destination fed by Segment events: its settings and its subscriptions."""

    destination: str = Field("sendgrid", description="sendgrid, sendgrid-audiences, webhook, dotdigital, "
                             "dotdigital-audiences or twilio")
    settings: dict[str, Any] = Field(default_factory=dict, description="the destination's Segment settings, "
                                     "e.g. sendGridApiKey, endpoint (sendGridApiKey defaults to SENDGRID_API_KEY); "
                                     "Dotdigital's api_host, "
                                     "username, password (DOTDIGITAL_API_USER, DOTDIGITAL_API_PASSWORD)")
    subscriptions: list[SubscriptionSettings] = Field(default_factory=list)
    endpoint: str | None = Field(None, description="API base URL override (emulator or proxy)")
    max_concurrency: int = Field(4, ge=1, le=64, description="API requests in flight for this destination")
    window_events: int = Field(15_000, ge=1, description="most events taken from the journal at once "
                               "(merged per contact and sent in as few requests as possible)")
    windows_in_flight: int = Field(8, ge=1, le=64, description="windows processed at once; each contact's "
                                   "actions still run in order (a window waits only for the contacts it shares)")
    max_events_in_flight: int = Field(60_000, ge=1, description="bound on the events of all windows in flight "
                                      "(memory, with a backlog)")
    job_timeout_seconds: float = Field(600.0, gt=0, description="longest wait for a contacts import job")
    job_poll_seconds: float = Field(0.5, gt=0, description="first wait before polling an import job")

    def api_settings(self) -> dict[str, Any]:
        """The destination's Segment settings as its actions use them: a SendGrid destination without
        ``sendGridApiKey`` takes SENDGRID_API_KEY (also for settings built without the loader)."""
        settings = dict(self.settings)
        if self.destination.startswith("sendgrid") and not settings.get("sendGridApiKey") \
                and os.environ.get("SENDGRID_API_KEY"):
            settings["sendGridApiKey"] = os.environ["SENDGRID_API_KEY"]
        if self.destination == "twilio":
            for name, variable in (("accountSid", "TWILIO_ACCOUNT_SID"), ("authToken", "TWILIO_AUTH_TOKEN")):
                if not settings.get(name) and os.environ.get(variable):
                    settings[name] = os.environ[variable]
        if self.destination.removeprefix("actions-").startswith("dotdigital"):
            for name, variable in (("username", "DOTDIGITAL_API_USER"), ("password", "DOTDIGITAL_API_PASSWORD")):
                if not settings.get(name) and os.environ.get(variable):
                    settings[name] = os.environ[variable]
        return settings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SGBRIDGE_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    config: str | None = Field(None, description="path of the TOML config file (SGBRIDGE_CONFIG)")

    database_url: str = Field("sqlite:///sgbridge.db", description="sqlite:///PATH or postgresql://…")
    host: str = Field("127.0.0.1", description="listen address of `serve`")
    port: int = Field(8080, ge=0, le=65535, description="listen port of `serve`")
    log_level: str = Field("info", description="debug, info, warning, error")
    log_format: Literal["text", "json"] = Field("text", description="text, or json: one JSON object a line with "
                                                "time, level, role, logger, message and, where they apply, "
                                                "source, destination, seq and request_id")
    metrics_token: SecretStr | None = Field(None, description="if set, /metrics needs this bearer token")
    segment: SegmentSettings = Field(default_factory=SegmentSettings)
    segment_inbound: SegmentInboundSettings = Field(default_factory=SegmentInboundSettings)
    sources: dict[str, SourceSettings] = Field(default_factory=lambda: {"default": SourceSettings()})
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    actions: dict[str, ActionDestinationSettings] = Field(
        default_factory=dict, description="Segment events to SendGrid (and webhooks): destinations by name")
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    processes: ProcessSettings = Field(default_factory=ProcessSettings)
    workflows: list[WorkflowSettings] = Field(default_factory=list, description="durable flows: a trigger, "
                                              "waits, conditions, look-ups and actions (docs/workflows.md)")
    workflow_engine: WorkflowEngineSettings = Field(default_factory=WorkflowEngineSettings)
    audience_reconcile: list[AudienceReconcileSettings] = Field(
        default_factory=list, description="scheduled reconciles of a SendGrid list with the audience membership "
        "sgbridge recorded (docs/workflows.md)")
    suppression_watch: SuppressionWatchSettings = Field(default_factory=SuppressionWatchSettings)
    twilio_inbound: TwilioInboundSettings = Field(default_factory=TwilioInboundSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        # Checked here so a typo stops start-up with one line; the URL itself is not repeated (it
        # may hold a password).
        if value.startswith(("postgresql://", "postgres://", "sqlite:///")) or value in ("sqlite://", ":memory:"):
            return value
        scheme = value.split("://", 1)[0] if "://" in value else ""
        raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:///PATH or postgresql://…")

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceSettings]) -> dict[str, SourceSettings]:
        # Names appear in URLs (/webhooks/sendgrid/NAME) and in the journal, where ':' marks
        # Segment-born events.
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name)]
        if bad:
            raise ValueError(f"source names may use letters, digits, '_', '.' and '-' only: {bad}")
        return value

    @model_validator(mode="after")
    def _check_actions(self) -> Settings:
        # Mappings and triggers are checked at start-up, with the path of the bad key.
        from sgbridge.actions.catalog import UnknownAction, find_destination
        from sgbridge.actions.runner import ConfigError as ActionConfigError
        from sgbridge.actions.runner import check_subscription

        for name, destination in self.actions.items():
            try:
                find_destination(destination.destination)
            except UnknownAction as exc:
                raise ValueError(f"actions.{name}.destination: {exc}") from None
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) or name == "segment":
                raise ValueError(f"actions.{name}: destination names may use letters, digits, '_', '.' and '-' "
                                 "('segment' is taken)")
            for index, sub in enumerate(destination.subscriptions):
                try:
                    check_subscription(f"actions.{name}.subscriptions[{index}]", destination.destination,
                                       sub.action, sub.mapping, sub.trigger, sub.use_defaults)
                except ActionConfigError as exc:
                    raise ValueError(str(exc)) from None
        self.compiled_workflows()
        self._check_reconciles()
        watch = self.suppression_watch
        if watch.enabled and watch.source not in self.sources:
            raise ValueError(f"suppression_watch.source: no source {watch.source!r} "
                             f"(sources: {', '.join(self.sources)})")
        if watch.enabled:
            from sgbridge.workflows.language import WorkflowConfigError, duration

            try:
                if duration(watch.every, "suppression_watch.every") < 10:
                    raise ValueError("suppression_watch.every: at least 10 s")
            except WorkflowConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    def _check_reconciles(self) -> None:
        from sgbridge.workflows.language import WorkflowConfigError, duration

        seen: set[str] = set()
        for index, item in enumerate(self.audience_reconcile):
            where = f"audience_reconcile[{index}]"
            if item.name in seen:
                raise ValueError(f"{where}.name: {item.name!r} names another reconcile")
            seen.add(item.name)
            if (item.list_id is None) == (item.list_name is None):
                raise ValueError(f"{where}: give list_id or list_name (one of them)")
            destination = self.actions.get(item.destination)
            if destination is None or destination.destination != "sendgrid":
                raise ValueError(f"{where}.destination: {item.destination!r} is not an [actions.<name>] destination "
                                 "of kind sendgrid")
            try:
                if duration(item.every, f"{where}.every") < 60:
                    raise ValueError(f"{where}.every: at least a minute")
            except WorkflowConfigError as exc:
                raise ValueError(str(exc)) from None

    def workflows_wanted(self) -> bool:
        """Workflows, audience reconciles or the suppression watch are configured: the workflows
        role (and its intake, which keeps the profiles) runs."""
        return bool(self.workflows or self.audience_reconcile or self.suppression_watch.enabled)

    def compiled_workflows(self) -> dict[str, Any]:
        """The workflows, checked and compiled (sgbridge.workflows.language.Workflow), by name."""
        from sgbridge.workflows.language import WorkflowConfigError, compile_workflow

        destinations = {name: d.destination for name, d in self.actions.items()}
        compiled: dict[str, Any] = {}
        for index, workflow in enumerate(self.workflows):
            if workflow.name in compiled:
                raise ValueError(f"workflows[{index}].name: {workflow.name!r} names another workflow")
            try:
                compiled[workflow.name] = compile_workflow(workflow, f"workflows[{index}]", destinations)
            except WorkflowConfigError as exc:
                raise ValueError(str(exc)) from None
            if compiled[workflow.name].longest_count() > self.workflow_engine.history_seconds:
                raise ValueError(f"workflows[{index}]: a count looks back further than "
                                 "workflow_engine.history_seconds keeps counted events; raise it")
        return compiled

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive through init kwargs (see load_settings), and must lose
        # against the environment.
        return (env_settings, init_settings)

    def warehouse_dataset_for(self, source: str) -> str:
        configured = self.sources[source].warehouse_dataset if source in self.sources else None
        return configured or ("sendgrid" if source == "default" else source)

    def sync_sources(self) -> list[str]:
        """Sources whose objects are synced: those with an API key and ``sync`` on."""
        return [name for name, source in self.sources.items() if source.api_key and source.sync]

    def write_key_for(self, source: str) -> str | None:
        override = self.sources[source].segment_write_key if source in self.sources else None
        key = override or self.segment.write_key
        return key.get_secret_value() if key else None


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the config."""


def _apply_short_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """The documented short variables: they work without a config file.

    (``SGBRIDGE_DATABASE_URL`` and every other ``SGBRIDGE_*`` variable are read by
    pydantic-settings itself.)
    """
    segment = data.setdefault("segment", {})
    if key := env.get("SEGMENT_WRITE_KEY"):
        segment["write_key"] = key
    if region := env.get("SEGMENT_REGION"):
        segment["region"] = region.strip().lower()
    if endpoint := env.get("SEGMENT_ENDPOINT"):
        segment["endpoint"] = endpoint
    inbound = data.setdefault("segment_inbound", {})
    if token := env.get("TWILIO_AUTH_TOKEN"):
        data.setdefault("twilio_inbound", {}).setdefault("auth_token", token)
    if secret := env.get("SEGMENT_WEBHOOK_SHARED_SECRET"):
        inbound["shared_secret"] = secret
    if secret := env.get("SEGMENT_WEBHOOK_HEADER_SECRET"):
        inbound["header_secret"] = secret
    if write_keys := env.get("SGBRIDGE_INBOUND_WRITE_KEYS"):
        inbound["write_keys"] = write_keys
    if api_key := env.get("SENDGRID_API_KEY"):
        for destination in (data.get("actions") or {}).values():
            if isinstance(destination, dict) and destination.get("destination", "sendgrid").startswith(
                    ("sendgrid", "actions-sendgrid")):
                destination.setdefault("settings", {}).setdefault("sendGridApiKey", api_key)
    if keys := env.get("SENDGRID_WEBHOOK_PUBLIC_KEY"):
        default = data.setdefault("sources", {}).setdefault("default", {})
        default["public_keys"] = keys
    if api_key := env.get("SENDGRID_API_KEY"):
        data.setdefault("sources", {}).setdefault("default", {}).setdefault("api_key", api_key)
    if token := env.get("SEGMENT_PROFILE_API_TOKEN"):
        data.setdefault("workflow_engine", {})["profile_api_token"] = token
    if space := env.get("SEGMENT_SPACE_ID"):
        data.setdefault("workflow_engine", {})["profile_api_space"] = space
    if endpoint := env.get("SENDGRID_API_ENDPOINT"):
        data.setdefault("sources", {}).setdefault("default", {}).setdefault("api_endpoint", endpoint)


def _add_workflow_files(data: dict[str, Any], config_path: str | Path | None) -> None:
    """``workflow_engine.workflows_folder``: one TOML file per workflow, added after the config's own
    (a relative folder is taken from the config file's folder)."""
    engine = data.get("workflow_engine")
    folder = os.environ.get("SGBRIDGE_WORKFLOW_ENGINE__WORKFLOWS_FOLDER") or (
        engine.get("workflows_folder") if isinstance(engine, dict) else None)
    if not folder:
        return
    where = Path(folder)
    if not where.is_absolute() and config_path:
        where = Path(config_path).parent / where
    if not where.is_dir():
        raise ConfigError(f"workflow_engine.workflows_folder: {where} is not a folder")
    found = data.setdefault("workflows", [])
    if not isinstance(found, list):
        return
    for file in sorted(where.glob("*.toml")):
        try:
            found.append(tomllib.loads(file.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"workflow file {file} is not valid TOML: {exc}") from exc


def _format_error(err: ValidationError, origin: str) -> str:
    """One line for one problem (the usual case), one line per problem after a heading otherwise."""
    problems = []
    for problem in err.errors():
        key = ".".join(str(p) for p in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        problems.append(f"{key}: {message}" if key else message)
    if len(problems) == 1:
        return f"invalid configuration ({origin}): {problems[0]}"
    return "\n".join([f"invalid configuration ({origin}):", *(f"  {p}" for p in problems)])


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read the config file (if any), apply the environment, validate; ConfigError on problems."""
    data: dict[str, Any] = {}
    origin = "defaults and environment"
    path = config_file or os.environ.get("SGBRIDGE_CONFIG")
    if path:
        origin = f"{path} and environment"
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8") from exc
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _apply_short_env(data, os.environ)
    _add_workflow_files(data, path)
    try:
        return Settings(**data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, origin)) from None
