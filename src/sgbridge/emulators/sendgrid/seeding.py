"""A seeded, realistic account for warehouse syncs: ``seed_account(state, contacts=N, seed=S)``.

What a sync reads, in realistic proportions and deterministic for a seed (and a fixed clock):

* six custom fields (Text, Number, Date) and ``N // 2000 + 3`` lists (at most 1000) whose
  membership is skewed: the first lists hold most contacts, the tail a few each;
* five segments over those lists (and over custom fields, countries, sign-up dates);
* ``N`` contacts with names, e-mail addresses, places, phone numbers, custom values and 0-3
  list memberships, created over the last year and updated since, by the state clock;
* 20 single sends (draft, scheduled, triggered), four unsubscribe groups with members, and
  global unsubscribes, bounces, blocks, spam reports and invalid e-mails (each a few per cent
  of ``N``) created over the last 90 days.

Built for size: a million contacts in seconds and a few hundred MB. Contacts are slot objects
sharing their strings and ``list_ids`` tuples (see ``state.Contact``), and the collector is
paused while they are made (it would otherwise rescan the growing heap again and again).
"""

from __future__ import annotations

import gc
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from sgbridge.emulators.sendgrid import seed_pools as pools
from sgbridge.emulators.sendgrid.lists import MAX_LISTS
from sgbridge.emulators.sendgrid.state import (
    AsmGroup,
    Contact,
    FieldDefinition,
    MarketingList,
    Segment,
    SendGridEmulatorState,
    SingleSend,
    SuppressionEntry,
)
from sgbridge.emulators.sendgrid.util import iso

DAY = 86_400.0
YEAR = 365 * DAY
SUPPRESSION_WINDOW = 90 * DAY
CONTACTS_PER_LIST = 2000
SINGLE_SENDS = 20
# Shares of contacts on each suppression list (a contact is on at most one bounce-type list).
BOUNCE_SHARE, BLOCK_SHARE, SPAM_SHARE, INVALID_SHARE = 0.03, 0.01, 0.005, 0.01
GLOBAL_UNSUBSCRIBE_SHARE, GROUP_UNSUBSCRIBE_SHARE = 0.02, 0.015  # the latter per group
MEMBERSHIP_COUNTS = (0, 1, 1, 1, 1, 2, 2, 2, 3, 3)  # lists per contact, drawn uniformly
_ZIPF_TABLE_SIZE = 4096
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _email_part(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def _uuid4(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


@dataclass(frozen=True)
class _SegmentRule:
    name: str
    query: str
    parent: str | None
    matches: Callable[[Contact], bool]


def _custom_fields(state: SendGridEmulatorState) -> dict[str, str]:
    """The seeded custom fields, created like POST /v3/marketing/field_definitions would: name -> id."""
    ids: dict[str, str] = {}
    for name, field_type in pools.CUSTOM_FIELDS:
        definition = FieldDefinition(f"e{state.next_field_number}_{field_type[0]}", name, field_type)
        state.next_field_number += 1
        state.custom_fields[definition.id] = definition
        ids[name] = definition.id
    return ids


def _lists(state: SendGridEmulatorState, rng: random.Random, contacts: int, now: float) -> list[str]:
    count = min(MAX_LISTS, contacts // CONTACTS_PER_LIST + 3)
    ids: list[str] = []
    named = len(pools.LIST_NAMES)
    for n in range(count):
        name = pools.LIST_NAMES[n] if n < named else f"Campaign audience {n - named + 1}"
        item = MarketingList(_uuid4(rng), name, float(int(now - YEAR * rng.random())))
        state.lists[item.id] = item
        ids.append(item.id)
    return ids


def _zipf_table(size: int) -> list[int]:
    """Uniform index -> list position with weights 1/(position+1): a few big lists, a long tail."""
    weights = [1.0 / (position + 1) for position in range(size)]
    total = sum(weights)
    table: list[int] = []
    position, cumulative = 0, weights[0] / total
    for slot in range(_ZIPF_TABLE_SIZE):
        while (slot + 0.5) / _ZIPF_TABLE_SIZE > cumulative and position < size - 1:
            position += 1
            cumulative += weights[position] / total
        table.append(position)
    return table


def _segment_rules(lists: list[str], fields: dict[str, str], now: float) -> list[_SegmentRule]:
    plan, value = fields["plan"], fields["lifetime_value"]
    paid = frozenset({"starter", "pro", "enterprise"})
    recent = now - 30 * DAY
    newsletter, customers = lists[0], lists[1]
    select = "SELECT contact_id, updated_at FROM contact_data WHERE "
    return [
        _SegmentRule("Newsletter readers in the United States", f"{select}country = 'United States'", newsletter,
                     lambda c: c.country == "United States"),
        _SegmentRule("Paying customers", f"{select}{plan} IN ('starter', 'pro', 'enterprise')", None,
                     lambda c: c.custom is not None and c.custom.get(plan) in paid),
        _SegmentRule("Signed up in the last 30 days", f"{select}created_at > (NOW() - INTERVAL 30 DAY)", None,
                     lambda c: c.created_at >= recent),
        _SegmentRule("High-value customers", f"{select}{value} >= 500", customers,
                     lambda c: c.custom is not None and c.custom.get(value, 0) >= 500),
        _SegmentRule("Gmail readers", f"{select}email_domains = 'gmail.com'", newsletter,
                     lambda c: c.email is not None and c.email.endswith("@gmail.com")),
    ]


def _groups(state: SendGridEmulatorState) -> list[AsmGroup]:
    groups = []
    for n, (name, description) in enumerate(pools.ASM_GROUPS):
        group = AsmGroup(state.next_group_id, name, description, is_default=n == 0)
        state.next_group_id += 1
        state.groups[group.id] = group
        groups.append(group)
    return groups


def _contacts(  # one tight loop on purpose: it runs a million times
    state: SendGridEmulatorState, rng: random.Random, count: int, now: float, lists: list[str],
    fields: dict[str, str], segments: list[tuple[Segment, _SegmentRule]], groups: list[AsmGroup],
) -> None:
    rand, contacts, emails = rng.random, state.contacts, state.identity_index["email"]
    external_ids = state.identity_index["external_id"]
    firsts, lasts = pools.FIRST_NAMES, pools.LAST_NAMES
    first_parts, last_parts = [_email_part(n) for n in firsts], [_email_part(n) for n in lasts]
    domains, locations = pools.EMAIL_DOMAINS, pools.LOCATIONS
    streets = [f"{rng.randrange(1, 999)} {street}" for street in (
        "Main St", "Oak Ave", "Maple Dr", "High Street", "Church Rd", "Station Rd", "Park Lane", "Elm St",
        "Cedar Ct", "Lakeview Blvd", "Mill Road", "King Street", "Queen Street", "Market St", "River Rd")
        for _ in range(20)]
    day_strings: dict[int, str] = {}  # one shared Date value per day

    def day_of(ts: float) -> str:
        day = int(ts // DAY)
        text = day_strings.get(day)
        if text is None:
            text = day_strings[day] = iso(day * DAY)  # Date custom fields are midnight UTC, as contact_ops stores
        return text

    zipf = _zipf_table(len(lists))
    membership_combos: dict[tuple[str, ...], tuple[str, ...]] = {}
    plan_id, value_id, signup_id = fields["plan"], fields["lifetime_value"], fields["signup_date"]
    points_id, category_id, purchase_id = fields["loyalty_points"], fields["favorite_category"], \
        fields["last_purchase_date"]
    plans, categories = pools.PLANS, pools.FAVORITE_CATEGORIES
    bounce_cut, block_cut = BOUNCE_SHARE, BOUNCE_SHARE + BLOCK_SHARE
    spam_cut = block_cut + SPAM_SHARE
    group_cut = GLOBAL_UNSUBSCRIBE_SHARE + GROUP_UNSUBSCRIBE_SHARE * len(groups)

    for i in range(count):
        created = float(int(now - YEAR * rand()))
        updated = float(int(created + (now - created) * rand() ** 3))  # most contacts change soon after
        contact = Contact(_uuid4(rng), created, updated)
        f, last = int(rand() * len(firsts)), int(rand() * len(lasts))
        if rand() < 0.9:
            contact.first_name = firsts[f]
            if rand() < 0.95:
                contact.last_name = lasts[last]
        shape = rand()
        if contact.last_name is None:
            local = f"{first_parts[f]}{i}" if contact.first_name else f"user{i}"
        elif shape < 0.4:
            local = f"{first_parts[f]}.{last_parts[last]}{i}"
        elif shape < 0.7:
            local = f"{first_parts[f]}{last_parts[last]}{i}"
        else:
            local = f"{first_parts[f][:1]}{last_parts[last]}{i}"
        domain = domains[int(rand() ** 2 * len(domains))]
        email = f"{local}@{domain}"
        if email in emails:  # two name shapes met; "contact<i>" is taken by no shape
            email = f"contact{i}@{domain}"
        contact.email = email
        emails[email] = contact.id
        if rand() < 0.1:
            contact.external_id = f"crm-{i:07d}"
            external_ids[contact.external_id] = contact.id
        if rand() < 0.65:
            city, region, country, codes = locations[int(rand() * len(locations))]
            contact.city, contact.state_province_region, contact.country = city, region, country
            contact.postal_code = codes[int(rand() * len(codes))]
            if rand() < 0.3:
                contact.address_line_1 = streets[int(rand() * len(streets))]
        if rand() < 0.15:
            contact.phone_number = f"+1555{i:07d}"
        if rand() < 0.03:
            contact.alternate_emails = (f"{local}@work-mail.com",)

        custom: dict[str, object] = {}
        if rand() < 0.7:
            custom[plan_id] = plans[int(rand() * len(plans))]
        if rand() < 0.45:
            custom[value_id] = round(rng.lognormvariate(4.5, 1.2), 2)
        if rand() < 0.6:
            custom[signup_id] = day_of(created)
        if rand() < 0.35:
            custom[points_id] = int(rand() * 5000)
        if rand() < 0.4:
            custom[category_id] = categories[int(rand() * len(categories))]
        if rand() < 0.3:
            custom[purchase_id] = day_of(created + (now - created) * rand())
        if custom:
            contact.custom = custom

        memberships = MEMBERSHIP_COUNTS[int(rand() * len(MEMBERSHIP_COUNTS))]
        picked = sorted({zipf[int(rand() * _ZIPF_TABLE_SIZE)] for _ in range(memberships)})
        if picked:
            key = tuple(lists[p] for p in picked)
            contact.list_ids = membership_combos.setdefault(key, key)
        contacts[contact.id] = contact

        for segment, rule in segments:
            if (rule.parent is None or rule.parent in contact.list_ids) and rule.matches(contact):
                segment.member_ids[contact.id] = None

        suppressed = float(int(max(created, now - SUPPRESSION_WINDOW * rand())))
        kind = rand()
        if kind < bounce_cut:
            reason, status = pools.BOUNCE_REASONS[int(rand() * len(pools.BOUNCE_REASONS))]
            state.bounces[email] = SuppressionEntry(int(suppressed), reason.format(email=email), status)
        elif kind < block_cut:
            reason, status = pools.BLOCK_REASONS[int(rand() * len(pools.BLOCK_REASONS))]
            state.blocks[email] = SuppressionEntry(int(suppressed), reason, status)
        elif kind < spam_cut:
            ip = pools.SENDING_IPS[int(rand() * len(pools.SENDING_IPS))]
            state.spam_reports[email] = SuppressionEntry(int(suppressed), ip=ip)
        unsubscribe = rand()
        if unsubscribe < GLOBAL_UNSUBSCRIBE_SHARE:
            state.global_suppressions[email] = suppressed
        elif unsubscribe < group_cut:
            groups[int((unsubscribe - GLOBAL_UNSUBSCRIBE_SHARE) / GROUP_UNSUBSCRIBE_SHARE)].members[email] = suppressed


def _invalid_emails(state: SendGridEmulatorState, rng: random.Random, count: int, now: float) -> None:
    """Addresses SendGrid refused to send to: mistyped domains, never contacts of the account."""
    for n in range(int(count * INVALID_SHARE)):
        first = _email_part(rng.choice(pools.FIRST_NAMES))
        last = _email_part(rng.choice(pools.LAST_NAMES))
        email = f"{first}.{last}.{n}@{rng.choice(pools.TYPO_DOMAINS)}"
        created = int(now - SUPPRESSION_WINDOW * rng.random())
        state.invalid_emails[email] = SuppressionEntry(created, rng.choice(pools.INVALID_REASONS))


def _single_sends(state: SendGridEmulatorState, rng: random.Random, now: float, lists: list[str],
                  segments: list[str], groups: list[AsmGroup]) -> None:
    for n in range(SINGLE_SENDS):
        status = ("triggered", "triggered", "draft", "scheduled", "triggered")[n % 5]
        created = float(int(now - YEAR * rng.random()))
        if status == "triggered":
            send_at: float | None = float(int(created + (now - created) * rng.random()))
        elif status == "scheduled":
            send_at = float(int(now + 30 * DAY * rng.random()) // 3600 * 3600)
        else:
            send_at = None
        updated = float(int(send_at if status == "triggered" and send_at else created + (now - created) * rng.random()))
        name = f"{pools.SINGLE_SEND_NAMES[n % len(pools.SINGLE_SEND_NAMES)]} #{n // len(pools.SINGLE_SEND_NAMES) + 1}"
        item = SingleSend(
            id=_uuid4(rng), name=name, status=status,
            categories=tuple(sorted(rng.sample(pools.CATEGORIES, rng.randint(1, 2)))),
            send_at=send_at, created_at=created, updated_at=updated, is_abtest=n % 7 == 3,
            list_ids=tuple(rng.sample(lists, min(len(lists), rng.randint(1, 2)))),
            segment_ids=tuple(rng.sample(segments, 1)) if segments and n % 4 == 0 else (),
            subject=f"{name}: news from Acme", html_content=f"<html><body><h1>{name}</h1></body></html>",
            plain_content=name, suppression_group_id=groups[n % len(groups)].id, sender_id=1 + n % 3,
        )
        state.single_sends[item.id] = item


def seed_account(state: SendGridEmulatorState, contacts: int, seed: int = 0) -> dict[str, int]:
    """Replace the account's data (``state.reset()``) with a generated one; returns what was made.

    Deterministic for ``seed`` and the state clock's time: the same arguments give the same ids,
    addresses, memberships and timestamps.
    """
    if contacts < 0:
        raise ValueError("contacts must be 0 or more")
    state.reset()
    rng = random.Random(seed)
    now = state.now()
    collecting = gc.isenabled()
    gc.disable()
    try:
        fields = _custom_fields(state)
        lists = _lists(state, rng, contacts, now)
        segments: list[tuple[Segment, _SegmentRule]] = []
        for rule in _segment_rules(lists, fields, now):
            created = float(int(now - YEAR * rng.random()))
            segment = Segment(_uuid4(rng), rule.name, rule.query, (rule.parent,) if rule.parent else (),
                              created, float(int(created + (now - created) * rng.random())))
            state.segments[segment.id] = segment
            segments.append((segment, rule))
        groups = _groups(state)
        _contacts(state, rng, contacts, now, lists, fields, segments, groups)
        _invalid_emails(state, rng, contacts, now)
        _single_sends(state, rng, now, lists, list(state.segments), groups)
    finally:
        if collecting:
            gc.enable()
            # Everything made above sits in the youngest generation; sort it out now rather than
            # in the first request after seeding (a pause of a second or more at a million).
            gc.collect()
    return {
        "contacts": len(state.contacts), "custom_fields": len(state.custom_fields), "lists": len(state.lists),
        "segments": len(state.segments), "single_sends": len(state.single_sends), "groups": len(state.groups),
        "group_unsubscribes": sum(len(g.members) for g in state.groups.values()),
        "global_unsubscribes": len(state.global_suppressions), "bounces": len(state.bounces),
        "blocks": len(state.blocks), "spam_reports": len(state.spam_reports),
        "invalid_emails": len(state.invalid_emails),
    }
