"""Dotdigital API emulator (Starlette ASGI app): what Segment's Dotdigital (Actions) and Dotdigital
Audiences destinations call: contacts v3, data fields, lists, programs and enrolments, campaigns
and sends, transactional email, SMS (v2 send-to and CPaaS messages).

Sources for the behaviour (none of them is read at run time):

- Dotdigital's own OpenAPI files: the contacts v3 service (``importContact`` PATCH with
  ``merge-option``, ``getContact``, ``deleteContact``, ``errorResponse``, the channel status
  enums) and the v2 API (``ApiDataField``, ``ApiAddressBook``, ``ApiProgram[Enrolment]``,
  ``ApiCampaignSend``, ``ApiTransactionalEmail``, ``ApiSms``, status codes), as mirrored in
  api-evangelist/dotdigital ``openapi/_original/`` (commit 24e60ad).
- developer.dotdigital.com "API conventions" / "API endpoints": region hosts r1/r2/r3; a call to
  another region's host gets "403 - Forbidden: Access is denied"; ``GET /v2/account-info`` on r1
  answers for any region with the account's ``ApiEndpoint``.
- developer.dotdigital.com "Call rate limits" and the official PHP SDK dotmailer/dotdigital-php
  (``TooManyRequestsException``: ``x-ratelimit-scope``, ``x-ratelimit-limit``,
  ``x-ratelimit-reset`` = seconds until the reset): see ``limits``.
- v2 error strings (``Authorization has been denied for this request.``, ``Error:
  ERROR_CONTACT_NOT_FOUND``, ``... ERROR_PARAMETER_INVALID``, ``ERROR_PROGRAM_NOT_ACTIVE``...):
  Dotdigital's Magento connector (dotmailer/dotmailer-magento-extension ``Apiconnector/Client.php``).
- Segment's requests and the answers its code reads: the project's research notes on Segment's
  Dotdigital destinations (segment-api.md §1.3-1.4) and Segment's own test cases for them.

Modules: ``state`` (the account), ``pipeline`` (faults, region, auth, limits, error shapes),
``contacts`` (v3), ``v2`` (the rest), ``limits``, ``control`` (``/_emulator/...``).
"""

from sgbridge.emulators.dotdigital.app import create_dotdigital_emulator, serve_dotdigital_emulator
from sgbridge.emulators.dotdigital.state import DotdigitalState

__all__ = ["DotdigitalState", "create_dotdigital_emulator", "serve_dotdigital_emulator"]
