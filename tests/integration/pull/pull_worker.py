"""A separate PROCESS that runs one pull write-back (``pipeline.pull``, what the
``pushed/source/<entity>`` asset runs) so a test can kill it with SIGKILL at a chosen point.
Reads its configuration as JSON on stdin (database URLs, the sandbox's address and app
credentials, company, entity, run id); the token key comes from the environment, as in a run
worker."""

from __future__ import annotations

import json
import sys

import sqlalchemy as sa

from qbo_pipelines.qbo.ids import RealmId
from qbo_pipelines.qbo.secret import Secret
from qbo_pipelines.sync import pipeline
from qbo_pipelines.sync.env import QboApp, SyncEnv


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    app = QboApp(cfg["client_id"], Secret(cfg["client_secret"]), cfg["api_url"], cfg["api_url"])
    env = SyncEnv(sa.create_engine(cfg["warehouse"]), sa.create_engine(cfg["source"]), app)
    report = pipeline.pull(env, RealmId(cfg["realm"]), cfg["entity"], run_id=cfg["run_id"])
    print(json.dumps(report.as_metadata()))


if __name__ == "__main__":
    main()
