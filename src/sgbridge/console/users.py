"""Console users: in the journal (``sgbridge users add``) and in the config (``[[console.users]]``).

Passwords are kept as argon2id hashes (argon2-cffi's defaults); a user in the journal wins over a
config user of the same name. A new password or a removal ends the user's sessions (their rows in
``console_sessions``, sgbridge.console.auth)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from sgbridge.console.settings import ROLES, ConsoleSettings
from sgbridge.journal import Journal

_HASHER = PasswordHasher()
# Verified when the name is unknown, so a wrong name costs the time of a wrong password.
_DUMMY = _HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    name: str
    role: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


class UserError(ValueError):
    """A user that cannot be added or changed (the message says why)."""


class Users:
    def __init__(self, journal: Journal, settings: ConsoleSettings) -> None:
        self.journal = journal
        self.configured = {u.name: u for u in settings.users}

    def _row(self, name: str) -> tuple[str, str] | None:
        q = self.journal.q

        def job(conn: Any) -> tuple[str, str] | None:
            row = conn.execute(q("SELECT role, password_hash FROM console_users WHERE name = ?"), (name,)).fetchone()
            return None if row is None else (str(row[0]), str(row[1]))

        return self.journal.run_sync(job)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user, if the password is theirs (argon2 verification; same cost for unknown names)."""
        row = self._row(name) if len(name) <= 64 else None
        if row is not None:
            role, hashed = row
        elif name in self.configured:
            config_user = self.configured[name]
            role, hashed = config_user.role, config_user.password_hash.get_secret_value()
        else:
            role, hashed = "", _DUMMY
        try:
            _HASHER.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return User(name, role) if role else None

    def get(self, name: str) -> User | None:
        row = self._row(name)
        if row is not None:
            return User(name, row[0])
        if name in self.configured:
            return User(name, self.configured[name].role)
        return None

    def add(self, name: str, role: str, password: str, *, replace: bool = False) -> None:
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if not name or len(name) > 64 or not name.isprintable() or name.strip() != name:
            raise UserError("a user name is 1 to 64 printable characters, without spaces around it")
        if len(password) < 12:
            raise UserError("a password has at least 12 characters")
        hashed, now, q = hash_password(password), time.time(), self.journal.q

        def job(conn: Any) -> bool:
            exists = conn.execute(q("SELECT 1 FROM console_users WHERE name = ?"), (name,)).fetchone()
            if exists and not replace:
                return False
            if exists:
                conn.execute(q("UPDATE console_users SET role = ?, password_hash = ? WHERE name = ?"),
                             (role, hashed, name))
            else:
                conn.execute(q("INSERT INTO console_users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)"),
                             (name, role, hashed, now))
            conn.execute(q("DELETE FROM console_sessions WHERE name = ?"), (name,))  # old sessions end
            return True

        if not self.journal.run_sync(job):
            raise UserError(f"user {name!r} exists (use `sgbridge users passwd`)")

    def remove(self, name: str) -> bool:
        q = self.journal.q

        def job(conn: Any) -> bool:
            gone = int(conn.execute(q("DELETE FROM console_users WHERE name = ?"), (name,)).rowcount) > 0
            conn.execute(q("DELETE FROM console_sessions WHERE name = ?"), (name,))
            return gone

        return self.journal.run_sync(job)

    def list(self) -> list[dict[str, Any]]:
        def job(conn: Any) -> list[dict[str, Any]]:
            rows = conn.execute("SELECT name, role, created_at FROM console_users ORDER BY name").fetchall()
            return [{"name": r[0], "role": r[1], "created_at": float(r[2]), "kept_in": "journal"} for r in rows]

        stored = self.journal.run_sync(job)
        names = {u["name"] for u in stored}
        return stored + [{"name": u.name, "role": u.role, "created_at": None, "kept_in": "config"}
                         for u in self.configured.values() if u.name not in names]
