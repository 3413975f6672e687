"""Durable workflows (seed 003): triggers over the log, waits, conditions, look-ups and actions.

- ``settings``: the ``[[workflows]]`` entries and ``[workflow_engine]``;
- ``language``: a workflow compiled into steps, checked with the path of a bad key;
- ``documents``: what a workflow sees of a stored event, whose run it is, profile traits;
- ``engine``: advancing runs, and the timer loop (``WorkflowRunner``);
- ``simulate``: ``sgbridge workflows test`` on a simulated clock.

The intake (every stored event → runs) is a consumer of the log on the delivery engine:
``sgbridge.destinations.workflows``. Runs, timers and profiles live in the journal
(``sgbridge.journal.workflow_runs``).
"""
