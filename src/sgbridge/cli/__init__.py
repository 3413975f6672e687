"""The ``sgbridge`` command: one module per command group, composed here.

| module | commands |
|---|---|
| ``serve`` | ``serve`` (the supervised roles, or ``--role`` in this process) |
| ``demo`` | ``demo`` |
| ``emulate`` | ``emulate segment | sendgrid | sendgrid-webhook | dotdigital | twilio`` |
| ``actions`` | ``actions list``, ``actions test``, ``actions reference`` |
| ``dead_letters`` | ``dead-letters list``, ``dead-letters replay`` |
| ``events`` | ``status``, ``events show`` |
| ``sync`` | ``sync``, ``sync-history``, ``check`` |
| ``config`` | ``config-reference`` |
| ``audiences`` | ``audiences reconcile``, ``audiences history`` |
| ``workflows`` | ``workflows list``, ``workflows runs``, ``workflows show``, ``workflows cancel``, ``workflows test`` |
| ``users`` | ``users add``, ``users passwd``, ``users remove``, ``users list``, ``users hash`` (the console's users) |

``common`` holds what the commands share (``--config``, settings, the journal, one-line errors),
``output`` the tables for people.
"""

from __future__ import annotations

import sys

import click

from sgbridge import __version__
from sgbridge.cli.actions import actions
from sgbridge.cli.audiences import audiences
from sgbridge.cli.config import config_reference
from sgbridge.cli.dead_letters import dead_letters
from sgbridge.cli.demo import demo
from sgbridge.cli.emulate import emulate
from sgbridge.cli.events import events, status
from sgbridge.cli.serve import serve
from sgbridge.cli.sync import check, sync, sync_history
from sgbridge.cli.users import users
from sgbridge.cli.workflows import workflows


@click.group()
@click.version_option(__version__, prog_name="sgbridge")
def main() -> None:
    """sgbridge: SendGrid ⇄ Segment, durable, deduplicated, fast."""


for command in (serve, demo, emulate, actions, dead_letters, status, events, sync, sync_history, check,
                config_reference, workflows, audiences, users):
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
