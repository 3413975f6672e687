"""``sgbridge users …``: the console's users, kept in the journal with argon2 password hashes."""

from __future__ import annotations

import sys

import click

from sgbridge.cli.common import config_option, open_journal
from sgbridge.cli.common import settings_from as _settings


@click.group()
def users() -> None:
    """Console users (the web UI at /ui): add, list, change a password, remove."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@users.command("add")
@config_option
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True,
              help="viewer reads; operator also replays dead letters and cancels runs.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_add(config: str | None, name: str, role: str, password_stdin: bool) -> None:
    """Add a console user (asks for the password: at least 12 characters)."""
    from sgbridge.console.users import UserError, Users

    settings = _settings(config)
    password = _password(password_stdin)
    journal = open_journal(config, settings)
    try:
        Users(journal, settings.console).add(name, role, password)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        journal.close()
    click.echo(f"user {name} added ({role})")


@users.command("passwd")
@config_option
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default=None, help="Change the role too.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_passwd(config: str | None, name: str, role: str | None, password_stdin: bool) -> None:
    """Set a user's password (and role); their open sessions end."""
    from sgbridge.console.users import UserError, Users

    settings = _settings(config)
    journal = open_journal(config, settings)
    try:
        store = Users(journal, settings.console)
        current = store.get(name)
        if current is None or name not in {u["name"] for u in store.list() if u["kept_in"] == "journal"}:
            raise click.ClickException(f"no user {name!r} in the journal")
        store.add(name, role or current.role, _password(password_stdin), replace=True)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        journal.close()
    click.echo(f"user {name} changed; their sessions have ended")


@users.command("remove")
@config_option
@click.argument("name")
def users_remove(config: str | None, name: str) -> None:
    """Remove a user kept in the journal; their sessions end at once."""
    from sgbridge.console.users import Users

    settings = _settings(config)
    journal = open_journal(config, settings)
    try:
        removed = Users(journal, settings.console).remove(name)
    finally:
        journal.close()
    if not removed:
        raise click.ClickException(f"no user {name!r} in the journal")
    click.echo(f"user {name} removed")


@users.command("list")
@config_option
def users_list(config: str | None) -> None:
    """The console's users and their roles (never their hashes)."""
    from sgbridge.cli.output import print_records
    from sgbridge.console.users import Users

    settings = _settings(config)
    journal = open_journal(config, settings)
    try:
        rows = Users(journal, settings.console).list()
    finally:
        journal.close()
    if not rows:
        click.echo("no users: add one with `sgbridge users add NAME --role operator`")
        return
    print_records(("name", "role", "kept in"), [(r["name"], r["role"], r["kept_in"]) for r in rows])


@users.command("hash")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def users_hash(password_stdin: bool) -> None:
    """Print an argon2 hash of a password, for a [[console.users]] entry in the config file."""
    from sgbridge.console.users import hash_password

    click.echo(hash_password(_password(password_stdin)))
