"""The settings of workflows: each ``[[workflows]]`` entry, and ``[workflow_engine]`` for the runner.

A workflow's steps are checked by ``sgbridge.workflows.language.compile_workflow`` at start-up,
with the path of a bad key (``workflows[0].steps[2].wait: …``), as mappings are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class WorkflowSettings(BaseModel):
    """One durable flow: a trigger, whose run it is, and its steps (docs/workflows.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the workflow's name (runs and metrics)")
    trigger: str = Field(description="Segment subscription syntax over every stored event: Segment's own and "
                         "SendGrid's as the track calls they become, e.g. event = \"Cart Abandoned\"")
    when: Any = Field(None, description="a further condition on the trigger, e.g. a count: "
                      "{ count = 'event = \"Pricing Viewed\"', within = \"24h\", at_least = 3 }")
    key: list[str] = Field(default_factory=lambda: ["userId", "anonymousId", "email"],
                           description="whose run it is: the first of these the event has (email: the traits' "
                           "or properties' email; other names: a dotted path such as properties.account_id)")
    reentry: Literal["after_exit", "always", "never"] = Field(
        "after_exit", description="after_exit: one active run per key; always: a run per trigger event; "
        "never: one run per key, ever")
    exit_on: list[str] = Field(default_factory=list, description="conditions (subscription syntax) on later "
                               "events of the same key that end a run at whatever step it is")
    steps: list[dict[str, Any]] = Field(description="wait, wait_for, if, lookup, action, exit: docs/workflows.md")
    max_lateness: str | None = Field(None, description="a timer that fires later than this (the bridge was "
                                     "down) ends the run as 'late' instead of going on; default: it goes on")
    enabled: bool = Field(True, description="a disabled workflow is checked but starts no runs")


class WorkflowEngineSettings(BaseModel):
    """How the ``workflows`` role runs the runs."""

    model_config = ConfigDict(extra="forbid")

    poll_seconds: float = Field(0.5, gt=0, description="longest sleep of the timer loop when nothing is due")
    batch_runs: int = Field(500, ge=1, description="due runs taken up at once")
    lease_seconds: float = Field(60.0, gt=1, description="a run taken up by a process that died is taken over "
                                 "after this")
    history_seconds: float = Field(30 * 86400, ge=3600, description="how long counted events are kept "
                                   "(the longest count window a condition may use)")
    action_attempts: int = Field(8, ge=1, description="tries of an action step that fails transiently before "
                                 "its run is marked failed")
    backoff_initial_seconds: float = Field(1.0, gt=0, description="first wait before an action step is tried "
                                           "again; doubles per failure")
    backoff_max_seconds: float = Field(300.0, gt=0, description="longest wait between tries of an action step")
    workflows_folder: str | None = Field(None, description="a folder of TOML files, one workflow each (a "
                                         "file's own tables as one [[workflows]] entry), added to the config's")
    profile_api_space: str | None = Field(None, description="Segment space id: with a token, lookup steps read "
                                          "Segment's Profile API (SEGMENT_SPACE_ID)")
    profile_api_token: SecretStr | None = Field(None, description="the space's Profile API access token "
                                                "(SEGMENT_PROFILE_API_TOKEN)")
    profile_api_region: Literal["us", "eu"] = Field("us", description="profiles.segment.com or "
                                                    "profiles.euw1.segment.com")
    profile_api_endpoint: str | None = Field(None, description="Profile API base URL override (the emulator)")
    profile_cache_seconds: float = Field(60.0, ge=0, description="how long a profile read from Segment is reused")
    trait_names: dict[str, str] = Field(default_factory=dict, description="renames of the traits sgbridge "
                                        "computes, e.g. { last_email_opened_at = \"sendgrid_last_open\", "
                                        "unsubscribed_group_<id> = \"sg_group_<id>_out\" } (names: docs/workflows.md)")

    @field_validator("trait_names")
    @classmethod
    def _known_names(cls, value: dict[str, str]) -> dict[str, str]:
        from sgbridge.workflows.documents import check_trait_names

        check_trait_names(value)
        return value


class AudienceReconcileSettings(BaseModel):
    """A scheduled reconcile of a SendGrid list with an audience's membership as sgbridge recorded it
    (template 2 of seed 003; docs/workflows.md, "Audience reconcile")."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the reconcile's name (its run history)")
    audience: str = Field(min_length=1, description="the audience key (Engage's computation_key): the trait, "
                          "or the track property, that is true for members")
    list_id: str | None = Field(None, description="the SendGrid list the audience is synced to")
    list_name: str | None = Field(None, description="or its name (looked up in SendGrid at each run)")
    destination: str = Field("sendgrid", description="the [actions.<name>] destination (kind sendgrid) whose "
                             "API key and endpoint are used")
    every: str = Field("6h", description="how often it runs (s, m, h, d); each interval once across processes")
    fix: bool = Field(True, description="fix the drift in SendGrid; false: report it only")
    max_fixes: int = Field(1000, ge=0, description="more drift than this is reported, not fixed (a safety "
                           "stop: a journal restored from an old backup must not empty a list)")
    enabled: bool = Field(True, description="false: not scheduled (sgbridge audiences reconcile still runs it)")


SuppressionList = Literal["unsubscribes", "group_unsubscribes", "spam_reports", "bounces"]
SUPPRESSION_LISTS: tuple[SuppressionList, ...] = ("unsubscribes", "group_unsubscribes", "spam_reports", "bounces")


class SuppressionWatchSettings(BaseModel):
    """SendGrid's suppression lists read on a schedule: an opt-out no webhook event announced (an
    address suppressed in SendGrid's UI, by its API, by a bounce) becomes a SendGrid event of the
    journal, as the webhook's would be (docs/workflows.md, "Opt-outs from SendGrid's lists")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="read the suppression lists (the workflows role runs it)")
    source: str = Field("default", description="the SendGrid source whose api_key and api_endpoint are used, "
                        "and under which the events are stored")
    every: str = Field("5m", description="how often the lists are read")
    lists: list[SuppressionList] = Field(
        default_factory=lambda: list(SUPPRESSION_LISTS),
        description="which lists: the global unsubscribes, the unsubscribe groups' members, spam reports, bounces")
