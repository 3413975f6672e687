"""The settings of ``sgbridge serve``'s processes: one per role, under a supervisor."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProcessSettings(BaseModel):
    """How `sgbridge serve` runs its roles (ingest, deliver, warehouse) as processes of their own."""

    background_nice: int = Field(10, ge=0, le=19, description="niceness added to the delivery and warehouse "
                                 "processes, so that webhooks are acknowledged first and loaded after")
    stop_timeout_seconds: float = Field(30.0, gt=0, description="on SIGTERM, how long the roles may take to "
                                        "finish what they are sending before they are killed")
    restart_initial_seconds: float = Field(0.5, gt=0, description="first wait before a role that died is "
                                           "started again (doubled on each quick death)")
    restart_max_seconds: float = Field(30.0, gt=0, description="longest wait between restarts of a role")
    yield_to_ingest_seconds: float = Field(15.0, ge=0, description="while the ingest process on this machine is "
                                           "busy, warehouse loads wait, for events up to this old (then they go on "
                                           "regardless); 0: they never wait")
    ingest_busy_cpu: float = Field(0.6, gt=0, description="ingest counts as busy above this share of a CPU core")
    heartbeat_seconds: float = Field(2.0, gt=0, description="how often each role says it is alive (/healthz)")
    hung_after_seconds: float = Field(60.0, gt=0, description="a role whose heartbeat is this old while its "
                                      "process still runs is taken as hung: it is killed and started again")
