"""SendGrid v3 API emulator (Starlette ASGI app): contacts, lists, segments, single sends, custom
fields, contact exports, suppressions, mail send.

Requests are validated against SendGrid's official OpenAPI 3.1 specs (``openapi``), answered
with SendGrid's error shapes, rate-limit headers and asynchronous jobs, and recorded for tests
(``/_emulator/...``, see ``control``). One module per API area; the account's data lives in
``state.SendGridEmulatorState`` so a new area adds a container there and a module of
``Endpoint``s here, listed in ``app.ENDPOINTS``. ``seeding.seed_account`` fills an account with
realistic data for warehouse syncs.
"""

from sgbridge.emulators.sendgrid.app import create_sendgrid_emulator, serve_sendgrid_emulator
from sgbridge.emulators.sendgrid.seeding import seed_account
from sgbridge.emulators.sendgrid.state import SendGridEmulatorState

__all__ = ["SendGridEmulatorState", "create_sendgrid_emulator", "seed_account", "serve_sendgrid_emulator"]
