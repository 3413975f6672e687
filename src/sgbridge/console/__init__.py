"""The Event Delivery console: ``/ui``, server-rendered, behind a login (the ``web`` role).

- ``settings``: its settings model (``[console]``), composed by sgbridge.settings.
- ``users``: console users (the journal's ``console_users`` and ``[[console.users]]``), argon2 hashes.
- ``auth``: signed session cookies, CSRF tokens, the login rate limit.
- ``activity``: per-minute traffic of each source and destination, kept in memory from the journal.
- ``search_index``: email, userId and sg_message_id → events, a local SQLite index built beside the journal.
- ``views``: what each page reads from the journal (keyset pagination, indexed look-ups only).
- ``charts``: the overview's charts as SVG.
- ``app``: the Starlette routes and Jinja2 templates (``templates/``, ``static/``: nothing from a CDN).
"""
