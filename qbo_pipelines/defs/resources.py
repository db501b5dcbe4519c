"""Dagster resources: thin adapters that hand out plain library clients.

Nothing here reads the environment at import time; URLs default to the project's own Postgres
(embedded or ``QBO_PIPELINES_PG_URL``) and can be overridden per deployment.

Lifecycle: an asset opens :meth:`QboResource.session` once per step; it builds the warehouse
and source-app engines and the QBO clients once and disposes the engines when the step ends.

:class:`CompanyRunResource` (bound on every company-partitioned asset as ``company_run``) guards
company runs: a run launched without a company is refused before any step starts, with one clear
message and no automatic retry; every company run is tagged with its company, trigger and
direction (added at run start for runs the UI or a backfill launched).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

import dagster as dg
import sqlalchemy as sa

from qbo_pipelines import companies
from qbo_pipelines.sync.env import (
    ENV_API_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_OAUTH_URL,
    QboApp,
    SyncEnv,
)
from qbo_pipelines.warehouse import db, postgres

REALM_TAG = "qbo_pipelines/realm"
TRIGGER_TAG = "qbo_pipelines/trigger"
DIRECTION_TAG = "qbo_pipelines/direction"
PARTITION_TAG = "dagster/partition"
COMPANY_DIMENSION = "company"
"""Name of the company dimension of the date x company partitions (backfills)."""
DATE_DIMENSION = "date"
_RANGE_START = "dagster/asset_partition_range_start"
_RANGE_END = "dagster/asset_partition_range_end"
_BACKFILL = "dagster/backfill"
_MAX_RETRIES = "dagster/max_retries"

COMPANY_JOBS: Mapping[str, str] = {
    "push_job": "push",
    "pull_job": "pull",
    "backfill_range_job": "both",
}
"""Company-partitioned jobs and their direction."""
COMPANY_ASSET_PREFIXES: Mapping[tuple[str, ...], str] = {
    ("raw", "source"): "push",
    ("staged", "qbo"): "push",
    ("pushed", "qbo"): "push",
    ("backfill", "source"): "push",
    ("raw", "qbo"): "pull",
    ("pushed", "source"): "pull",
    ("backfill", "qbo"): "pull",
}
"""Asset key prefixes of the company-partitioned assets and their direction."""


class PartitionlessRunError(dg.DagsterError):
    """A company run was launched without a company partition."""


def _company_of_key(key: str) -> str:
    """The company of a partition key: the key itself, or the company part of a
    ``<company>|<date>`` key (multi-partition keys list dimensions by sorted name)."""
    if "|" not in key:
        return key
    parts = dict(zip(sorted((COMPANY_DIMENSION, DATE_DIMENSION)), key.split("|"), strict=False))
    return parts.get(COMPANY_DIMENSION, key)


def run_direction(job_name: str, asset_keys: list[tuple[str, ...]] | None) -> str | None:
    """``push``, ``pull``, ``both`` or None (not a company run)."""
    if job_name in COMPANY_JOBS:
        return COMPANY_JOBS[job_name]
    found = {
        direction
        for key in asset_keys or ()
        for prefix, direction in COMPANY_ASSET_PREFIXES.items()
        if key[: len(prefix)] == prefix
    }
    if not found:
        return None
    return found.pop() if len(found) == 1 else "both"


def run_company_tags(
    job_name: str, tags: Mapping[str, str], asset_keys: list[tuple[str, ...]] | None
) -> dict[str, str] | None:
    """The tags a company run is missing (company, trigger, direction); None if the run is not a
    company run. Raises :class:`PartitionlessRunError` for a company run without a company."""
    direction = run_direction(job_name, asset_keys)
    if direction is None:
        return None
    if tags.get(_RANGE_START):
        start, end = _company_of_key(tags[_RANGE_START]), _company_of_key(tags[_RANGE_END])
        company = start if start == end else f"{start}..{end}"
    elif tags.get(f"{PARTITION_TAG}/{COMPANY_DIMENSION}"):
        company = tags[f"{PARTITION_TAG}/{COMPANY_DIMENSION}"]
    elif tags.get(PARTITION_TAG):
        company = _company_of_key(tags[PARTITION_TAG])
    else:
        raise PartitionlessRunError(
            f"{job_name} runs for one QBO company: launch it for a partition (a connected "
            "company id; `qbo-pipelines status` lists them), e.g. `qbo-pipelines sync "
            f"{direction if direction != 'both' else 'push'} --realm <company id>`. Not retried."
        )
    trigger = "backfill" if tags.get(_BACKFILL) else "ui"
    wanted = {REALM_TAG: company, TRIGGER_TAG: trigger, DIRECTION_TAG: direction}
    return {k: v for k, v in wanted.items() if not tags.get(k)}


class CompanyRunResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Checks, when a run starts, that a company run has its company (else refuses it: one
    clear error, no step started, no automatic retry) and tags it with company, trigger and
    direction. Bound on the company-partitioned assets (key ``company_run``)."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        if run is None or context.instance is None:
            return
        keys = [tuple(k.path) for k in run.asset_selection] if run.asset_selection else None
        try:
            missing = run_company_tags(run.job_name, run.tags, keys)
        except PartitionlessRunError:
            context.instance.add_run_tags(run.run_id, {_MAX_RETRIES: "0"})
            raise
        if missing:
            context.instance.add_run_tags(run.run_id, missing)


def refuse_run(context: dg.OpExecutionContext | dg.AssetExecutionContext, why: str) -> NoReturn:
    """Fail the run in one line, without retries (automatic or the run's own)."""
    context.instance.add_run_tags(context.run_id, {_MAX_RETRIES: "0"})
    raise dg.Failure(description=f"{why} Not retried.", allow_retries=False)


def refuse_unless_connected(
    context: dg.OpExecutionContext | dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    realms: list[str],
) -> None:
    """Fail the run, in one line and without retries, when one of ``realms`` is not a connected
    company (never connected, or disconnected since: a run launched by hand, by ``dagster
    asset materialize`` or the retry of an earlier failed run): nothing is read or written."""
    engine = warehouse.engine()
    try:
        for realm in realms:
            companies.require_connected(engine, realm)
    except companies.NotConnectedError as exc:
        refuse_run(context, str(exc))
    finally:
        engine.dispose()


COMPANY_RUN = CompanyRunResource()
"""The one instance every company asset binds (``resource_defs={"company_run": COMPANY_RUN}``)."""


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The analyst warehouse (schemas raw_source, raw_qbo, staging, mapping, sync, marts)."""

    database_url: str | None = None

    def engine(self) -> sa.Engine:
        """A new engine (the caller disposes it)."""
        return db.make_engine(self.database_url or postgres.database_url("warehouse"))


class SourceAppResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The source application's database (the demo app by default)."""

    database_url: str | None = None

    def engine(self) -> sa.Engine:
        """A new engine (the caller disposes it)."""
        return db.make_engine(self.database_url or postgres.database_url("source_app"))


class QboResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The QBO app. Unset fields come from the QBO_PIPELINES_QBO_* environment variables
    (read when a run starts), else from the app stored in the warehouse by ``make demo`` or
    ``qbo-pipelines connect``; secrets are never shown in the UI (the code location passes
    them as ``dg.EnvVar``, see :func:`shared_resources`)."""

    client_id: str | None = None
    client_secret: str | None = None
    api_url: str | None = None
    oauth_url: str | None = None

    def app(self, warehouse: sa.Engine | None = None) -> QboApp:
        env = dict(os.environ)
        for key, value in (
            (ENV_CLIENT_ID, self.client_id),
            (ENV_CLIENT_SECRET, self.client_secret),
            (ENV_API_URL, self.api_url),
            (ENV_OAUTH_URL, self.oauth_url),
        ):
            if value:
                env[key] = value
        return QboApp.resolve(warehouse, env=env)

    def sync_env(self, warehouse: sa.Engine, source: sa.Engine) -> SyncEnv:
        return SyncEnv(warehouse=warehouse, source=source, app=self.app(warehouse))

    @contextmanager
    def session(
        self, warehouse: WarehouseResource, source_app: SourceAppResource
    ) -> Iterator[SyncEnv]:
        """One step's clients: both engines and the QBO app built once, the engines disposed
        when the step ends (also when it fails)."""
        wh, src = warehouse.engine(), source_app.engine()
        try:
            yield self.sync_env(wh, src)
        finally:
            wh.dispose()
            src.dispose()


SECRET_FIELDS = {"client_id": ENV_CLIENT_ID, "client_secret": ENV_CLIENT_SECRET}


def shared_resources(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The code location's resources. The QBO app's id and secret go in as ``dg.EnvVar`` when
    their variables are set where the code location loads (the UI then shows the variable's
    name, never the value; it is read when a run starts); unset, they come from the app stored
    in the warehouse."""
    env = os.environ if environ is None else environ
    qbo_config: dict[str, object] = {
        field: dg.EnvVar(name) for field, name in SECRET_FIELDS.items() if env.get(name)
    }
    return {
        "warehouse": WarehouseResource(),
        "source_app": SourceAppResource(),
        "qbo": QboResource(**qbo_config),  # type: ignore[arg-type]
    }
