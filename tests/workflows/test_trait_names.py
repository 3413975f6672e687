"""The traits sgbridge computes can be renamed (workflow_engine.trait_names): the profile, the
opt-out traits an identify step sends, and the checks of a bad rename."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from sgbridge.settings import Settings
from tests.workflows.harness import START, sendgrid_event, world

pytestmark = pytest.mark.anyio

OPT_OUTS = [{"name": "opt-outs", "key": ["email"], "reentry": "always",
             "trigger": 'context.library.name = "sgbridge" and (event = "Unsubscribed" or '
                        'event = "Unsubscribed From Group")',
             "steps": [{"identify": {"traits": {"@path": "$.opt_out"}}}]}]
RENAMES = {"unsubscribed": "sg_unsubscribed", "unsubscribed_group_<id>": "sg_group_<id>_out",
           "emails_opened": "sg_opens", "unsubscribed_groups": "sg_groups_out"}


async def test_renamed_traits_are_kept_and_sent_under_their_new_names(database_url: str) -> None:
    with world(database_url, OPT_OUTS, trait_names=RENAMES) as w:
        await w.send(sendgrid_event("open", "ada@example.com", START),
                     sendgrid_event("unsubscribe", "ada@example.com", START + 1),
                     sendgrid_event("group_unsubscribe", "ada@example.com", START + 2, asm_group_id=7))
        await w.run()
        profile = await w.runs.profile("email:ada@example.com")
        sent = [a["payload"]["traits"] for a in w.sent()]
    assert profile["sg_opens"] == 1 and "emails_opened" not in profile
    assert profile["sg_unsubscribed"] is True and profile["sg_group_7_out"] is True
    assert profile["sg_groups_out"] == [7] and "unsubscribed" not in profile
    assert profile["last_email_opened_at"]  # not renamed: its own name
    assert sent == [{"sg_unsubscribed": True, "email": "ada@example.com"},
                    {"sg_group_7_out": True, "email": "ada@example.com"}]


@pytest.mark.parametrize(("renames", "problem"), [
    ({"last_open": "x"}, "workflow_engine.trait_names.last_open: not a trait sgbridge computes"),
    ({"unsubscribed_group_<id>": "sg_group_out"}, "must contain <id>"),
    ({"emails_opened": "emails_clicked"}, "two computed traits would have the same name"),
])
def test_a_bad_rename_is_refused_at_start_up(renames: dict[str, str], problem: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Settings(workflow_engine={"trait_names": renames})
