"""Prometheus metrics: fixed per-stage counters, labelled by source or destination only."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as _multiprocess

INBOUND_REQUESTS = Counter("sgbridge_inbound_requests", "Webhook requests by source and HTTP status",
                           ["source", "status"])
INBOUND_EVENTS = Counter("sgbridge_inbound_events",
                         "Webhook events by source and result (accepted, duplicate, rejected)", ["source", "result"])
DELIVERY_EVENTS = Counter("sgbridge_delivery_events", "Events settled by destination and outcome",
                          ["destination", "outcome"])
DELIVERY_ATTEMPTS = Counter("sgbridge_delivery_attempts", "HTTP attempts by destination and outcome",
                            ["destination", "outcome"])
DELIVERY_LATENCY = Histogram("sgbridge_delivery_latency_seconds", "From receipt to acceptance by the destination",
                             ["destination"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
BACKLOG = Gauge("sgbridge_delivery_backlog", "Events stored but not yet past the destination's cursor",
                ["destination"], multiprocess_mode="livemostrecent")


def registry() -> CollectorRegistry:
    """What /metrics shows: this process's metrics, or, under the supervisor (Prometheus'
    multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), every role process's added up."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    _multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined

# Workflows (sgbridge/workflows): runs by workflow and how they ended, timers, lateness.
WORKFLOW_RUNS = Counter("sgbridge_workflow_runs", "Workflow runs started and ended, by workflow and event "
                        "(started, completed, exited, failed, cancelled, late)", ["workflow", "event"])
WORKFLOW_TIMERS_PENDING = Gauge("sgbridge_workflow_timers_pending", "Runs waiting on a timer",
                                multiprocess_mode="livemostrecent")
WORKFLOW_TIMER_LATENESS = Histogram("sgbridge_workflow_timer_lateness_seconds",
                                    "How late a timer fired after its due time", ["workflow"],
                                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 60, 600, 3600))
