"""The example "shop" application: a tiny HTTP server that reports the schema it was built for.

It stands in for a real web application in the skaffold demo (examples/app). ``GET /`` answers
with the Alembic head revision(s) this image carries — the revision the DatabaseMigration gating
this Deployment brought the database to before the Deployment was allowed to roll out.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = os.environ.get("SHOP_MIGRATIONS", "/app/migrations")
PORT = int(os.environ.get("PORT", "8000"))
HEADS = sorted(ScriptDirectory.from_config(Config(f"{MIGRATIONS}/alembic.ini")).get_heads())


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            body = json.dumps({"app": "shop", "schemaHeads": HEADS}).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()  # noqa: S104 - in a pod
