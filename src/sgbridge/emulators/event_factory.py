"""Deterministic, realistic SendGrid Event Webhook events.

The bridge has to cope with what SendGrid really sends, not with the tidy docs example, so
the factory reproduces the awkward parts documented in ``reference/sendgrid-api.md`` §1.4:
``category`` as a string, an array or absent; ``attempt`` as a string; bounces with
``type: "blocked"``, ``bounce_classification`` and sometimes no ``status``/``ip``;
asynchronous bounces without ``sg_message_id``; Apple machine opens; Single Send events with
millisecond timestamps and ``send_at`` strings; Automation fields; custom args at the top
level; mixed-case recipient addresses; old- and new-style ``sg_event_id`` values. Everything
derives from one seeded RNG, so a seed names a reproducible stream of events.
"""

from __future__ import annotations

import base64
import itertools
import string
import uuid
from collections import deque
from dataclasses import dataclass, field
from random import Random
from typing import Any

EVENT_KINDS = (
    "processed",
    "deferred",
    "delivered",
    "open",
    "click",
    "bounce",
    "blocked",  # an event "bounce" with type "blocked": SendGrid has no "blocked" event value
    "dropped",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
)
# Rough production mix: delivery events dominate, complaints are rare (cumulative weights).
_CUM_WEIGHTS = tuple(itertools.accumulate((24, 4, 24, 20, 9, 2, 1.5, 2, 0.5, 1, 1.5, 0.5)))
_ID_PREFIX = {"dropped": "drop", "spamreport": "spam_report", "blocked": "bounce"}
_ALNUM = string.ascii_lowercase + string.digits

_FIRST = ("ann", "bob", "chen", "dana", "emre", "fatima", "gus", "hana", "ivan", "jo", "kofi", "lea")
_LAST = ("smith", "garcia", "mueller", "tanaka", "okafor", "rossi", "novak", "silva", "kim", "berg")
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
)
_CATEGORIES = ("password_reset", "receipt", "welcome", "newsletter", "alerts", "transactional")
_DROP_REASONS = (
    "Bounced Address",
    "Unsubscribed Address",
    "Spam Reporting Address",
    "Invalid",
    "Invalid SMTPAPI header",
)
_BLOCK_CLASSES = ("Reputation", "Content", "Frequency or Volume Too High", "Technical Failure", "Unclassified")
_SINGLE_SENDS = ("March Newsletter", "Spring Sale", "Product Update Q2", "Webinar Invite")
_AUTOMATIONS = ("Welcome Series", "Abandoned Cart", "Re-engagement")


@dataclass
class _Message:
    """One sent message; its events share the recipient, ids, categories and custom args."""

    email: str
    prefix: str  # the X-Message-Id returned by /v3/mail/send
    sg_message_id: str
    smtp_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # category, custom args, campaign fields
    millis: bool = False  # Single Send events carry millisecond timestamps


class EventFactory:
    """Produce SendGrid events. ``event()`` for one, ``batch(n)`` for many, same seed same output."""

    def __init__(self, seed: int = 0, *, start_time: float | None = None, marketing_share: float = 0.3) -> None:
        self._rng = Random(seed)
        # A fixed default start keeps output reproducible; live senders pass time.time().
        self._clock = float(start_time) if start_time is not None else 1_735_689_600.0
        self._marketing_share = marketing_share
        self._account = str(self._int(10_000_000, 99_999_999))
        self._seq = 0
        self._recent: deque[_Message] = deque(maxlen=300)
        self._campaigns = [self._campaign(name, single=True) for name in _SINGLE_SENDS]
        self._campaigns += [self._campaign(name, single=False) for name in _AUTOMATIONS]

    # -- identifiers ----------------------------------------------------------------------

    def _int(self, low: int, high: int) -> int:
        """Like ``randint`` (inclusive) at a fraction of its cost; the factory is a hot path."""
        return low + int(self._rng.random() * (high - low + 1))

    def _sending_ip(self) -> str:
        return f"149.72.{self._int(0, 255)}.{self._int(1, 254)}"

    def _recipient_ip(self) -> str:
        return ("203.0.113.", "198.51.100.", "192.0.2.")[self._int(0, 2)] + str(self._int(1, 254))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _token(self, nbytes: int = 16) -> str:
        """base64url of random bytes; 16 bytes give the 22 characters of an X-Message-Id."""
        raw = self._rng.getrandbits(8 * nbytes).to_bytes(nbytes, "big")
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def fresh_event_id(self, event_name: str = "processed", message_prefix: str | None = None) -> str:
        """A new, never-repeated ``sg_event_id`` (base64url, at most ~90 characters)."""
        self._seq += 1
        if self._rng.random() < 0.15:
            # Older style: base64url of 16 bytes with padding; the counter keeps it unique.
            raw = self._rng.getrandbits(96).to_bytes(12, "big") + self._seq.to_bytes(4, "big")
            return base64.urlsafe_b64encode(raw).decode("ascii")
        prefix = message_prefix or self._token()
        plain = f"{_ID_PREFIX.get(event_name, event_name)}-{self._seq}-{self._account}-{prefix}-0"
        return base64.urlsafe_b64encode(plain.encode("ascii")).decode("ascii").rstrip("=")

    def _campaign(self, name: str, *, single: bool) -> dict[str, Any]:
        template = self._uuid()
        fields: dict[str, Any] = {
            "category": [],
            "template_id": template,
            "sg_template_id": template,
            "sg_template_name": f"{name} template",
        }
        if single:
            fields |= {
                "singlesend_id": self._uuid(),
                "singlesend_name": name,
                "mc_stats": "singlesend",
                "template_hash": f"{self._rng.getrandbits(128):032x}",
                "template_version_id": self._uuid(),
            }
        else:
            fields |= {"mc_auto_id": self._uuid(), "mc_auto_name": name, "mc_auto_step_id": self._uuid()}
        return fields

    # -- messages ---------------------------------------------------------------------------

    def _email(self) -> str:
        rng = self._rng
        local = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{self._int(1, 5000)}"
        domain = rng.choice(_DOMAINS)
        if rng.random() < 0.05:
            # Mixed case and plus tags: identity hashing in the bridge must normalise them.
            return f"{local.title()}+promo@{domain.upper()}"
        return f"{local}@{domain}"

    def _new_message(self, *, needs_group: bool = False) -> _Message:
        rng = self._rng
        prefix = self._token()
        relay = "filterdrecv" if rng.random() < 0.8 else "recvd"
        sg_message_id = (
            f"{prefix}.{relay}-{rng.getrandbits(40):010x}-{''.join(rng.choices(_ALNUM, k=5))}-"
            f"{self._int(1, 40)}-{rng.getrandbits(32):08X}-{self._int(1, 60)}.{rng.choice('0000123')}"
        )
        fields: dict[str, Any] = {}
        millis = False
        smtp_id: str | None = f"<{prefix}@ismtpd{self._int(1, 200):04d}p1mdw1.sendgrid.net>"
        if not needs_group and rng.random() < self._marketing_share:
            fields = dict(rng.choice(self._campaigns))
            smtp_id = None  # marketing events come without smtp-id
            if "singlesend_id" in fields:
                millis = True
                fields["phase_id"] = "test" if rng.random() < 0.1 else "send"
                fields["send_at"] = str(int(self._clock * 1000) - self._int(0, 3_600_000))
        else:
            roll = rng.random()
            if roll < 0.4:
                fields["category"] = rng.choice(_CATEGORIES)
            elif roll < 0.8:
                fields["category"] = rng.sample(_CATEGORIES, self._int(1, 3))
            if rng.random() < 0.7:
                fields["user_id"] = f"usr_{self._int(1, 50_000)}"  # custom args land at top level
            if rng.random() < 0.2:
                fields["order_id"] = f"ord-{self._int(100_000, 999_999)}"
            if needs_group or rng.random() < 0.3:
                fields["asm_group_id"] = self._int(1, 25)
        return _Message(self._email(), prefix, sg_message_id, smtp_id, fields, millis)

    def _message_for(self, kind: str) -> _Message:
        needs_group = kind in ("group_unsubscribe", "group_resubscribe")
        if kind not in ("processed", "dropped") and self._recent and self._rng.random() < 0.7:
            if not needs_group:
                return self._rng.choice(self._recent)
            candidates = [m for m in self._recent if "asm_group_id" in m.fields]
            if candidates:
                return self._rng.choice(candidates)
        message = self._new_message(needs_group=needs_group)
        self._recent.append(message)
        return message

    # -- events -------------------------------------------------------------------------------

    def event(self, kind: str | None = None) -> dict[str, Any]:
        """One event; ``kind`` is one of ``EVENT_KINDS`` (random by a realistic mix if None)."""
        rng = self._rng
        if kind is None:
            kind = rng.choices(EVENT_KINDS, cum_weights=_CUM_WEIGHTS)[0]
        elif kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        message = self._message_for(kind)
        self._clock += rng.expovariate(20.0)
        when = self._clock - rng.uniform(0, 3)  # events reach the webhook slightly out of order
        name = "bounce" if kind == "blocked" else kind
        event: dict[str, Any] = {
            "email": message.email,
            "event": name,
            "timestamp": int(when * 1000) if message.millis else int(when),
            "sg_event_id": self.fresh_event_id(name, message.prefix),
            "sg_message_id": message.sg_message_id,
            **message.fields,
        }
        delivery = kind in ("processed", "deferred", "delivered", "bounce", "blocked", "dropped")
        if message.smtp_id is not None and (delivery or rng.random() < 0.5):
            event["smtp-id"] = message.smtp_id
        self._add_kind_fields(kind, event)
        return event

    def _add_kind_fields(self, kind: str, event: dict[str, Any]) -> None:
        rng = self._rng
        if kind == "processed":
            event["send_at"] = event.get("send_at", 0)
            if rng.random() < 0.5:
                event["pool"] = {"name": "transactional", "id": 210}
        elif kind == "deferred":
            event |= {
                "response": "451 4.7.650 The mail server has been temporarily rate limited",
                "attempt": str(self._int(1, 5)),
                "ip": self._sending_ip(),
                "tls": 1,
            }
        elif kind == "delivered":
            stamp = int(self._clock)
            event |= {
                "response": f"250 2.0.0 OK  {stamp} x-gsmtp",
                "ip": self._sending_ip(),
                "tls": rng.choice((1, 1, 1, 0)),
            }
        elif kind in ("bounce", "blocked"):
            self._add_bounce_fields(kind, event)
        elif kind == "dropped":
            event |= {"reason": rng.choice(_DROP_REASONS), "status": "5.0.0"}
        elif kind == "open":
            machine = rng.random() < 0.2
            event |= {
                "useragent": "Mozilla/5.0" if machine else rng.choice(_AGENTS),
                "ip": f"17.58.{self._int(0, 255)}.{self._int(1, 254)}" if machine else self._recipient_ip(),
                "sg_machine_open": machine,
                "sg_content_type": "html",
            }
        elif kind == "click":
            event |= {
                "url": f"https://www.example.com/{rng.choice(('pricing', 'blog/news', 'account', 'docs'))}"
                f"?utm_source=sendgrid&utm_campaign=c{self._int(1, 99)}",
                "url_offset": {"index": self._int(0, 5), "type": rng.choice(("html", "html", "text"))},
                "useragent": rng.choice(_AGENTS),
                "ip": self._recipient_ip(),
            }
            if rng.random() < 0.5:
                event["sg_content_type"] = "html"
        elif kind in ("group_unsubscribe", "group_resubscribe"):
            event |= {
                "useragent": rng.choice(_AGENTS),
                "ip": self._recipient_ip(),
                "url": f"https://u{self._int(1000, 9999)}.ct.sendgrid.net/asm/unsubscribe/?user_id={self._account}",
            }

    def _add_bounce_fields(self, kind: str, event: dict[str, Any]) -> None:
        rng = self._rng
        sending_ip = self._sending_ip()
        if kind == "bounce":
            event |= {
                "type": "bounce",
                "reason": "550 5.1.1 The email account that you tried to reach does not exist",
                "status": "5.1.1",
                "bounce_classification": "Invalid Address",
                "ip": sending_ip,
                "tls": 1,
            }
            if rng.random() < 0.05:
                # "In the case of a delayed or asynchronous bounce, the message ID will be unavailable."
                event.pop("sg_message_id", None)
                event.pop("smtp-id", None)
            return
        event |= {
            "type": "blocked",
            "reason": "554 5.7.1 Service unavailable; client host blocked using a reputation list",
            "bounce_classification": rng.choice(_BLOCK_CLASSES),
            "tls": 0,
        }
        # Real blocked bounces seen in production lack status and ip (sendgrid-api.md §1.5).
        if rng.random() < 0.7:
            event["status"] = "5.7.1"
        if rng.random() < 0.7:
            event["ip"] = sending_ip

    def batch(self, n: int) -> list[dict[str, Any]]:
        return [self.event() for _ in range(n)]

    def one_of_each(self) -> list[dict[str, Any]]:
        """Every kind once, for tests that must see the whole variety in a small batch."""
        return [self.event(kind) for kind in EVENT_KINDS]
