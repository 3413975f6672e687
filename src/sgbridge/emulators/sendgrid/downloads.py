"""``GET /_emulator/downloads/{export_id}/{file}?token=...``: the export files, as S3 would serve them.

SendGrid's export URLs are pre-signed S3 links: no ``Authorization`` header, a signature in
the query, and an expiry. The emulator keeps the behaviour a client depends on: the right
token or 403, 403 once ``expires_at`` (by the state clock) has passed, 404 for a file that
does not exist, and the gzip bytes as they are (``application/gzip``, no ``Content-Encoding``:
the client gunzips, as Airbyte's ``GzipDecoder`` does), streamed from disk. Error bodies are
S3's XML.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from sgbridge.emulators.sendgrid.exports import DOWNLOAD_PATH
from sgbridge.emulators.sendgrid.pipeline import SendGridEmulator


def _s3_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


async def download(request: Request) -> Response:
    emulator: SendGridEmulator = request.app.state.emulator
    state = emulator.state
    state.tick()  # an export that just became due is written before it is served
    export = state.exports.get(request.path_params["export_id"])
    name = request.path_params["name"]
    if export is None or export.status != "ready" or name not in export.files:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if not secrets.compare_digest(request.query_params.get("token", ""), export.token):
        return _s3_error(403, "AccessDenied", "Access Denied")
    if state.now() > export.expires_at:
        return _s3_error(403, "AccessDenied", "Request has expired")
    path = state.export_store.file(export.id, name)
    if path is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    return FileResponse(path, media_type="application/gzip", filename=name)


ROUTES = [Route(f"{DOWNLOAD_PATH}/{{export_id}}/{{name}}", download, methods=["GET"])]
