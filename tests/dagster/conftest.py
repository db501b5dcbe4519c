"""A real Dagster instance on dagster-postgres, configured by the project's own dagster.yaml."""

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from qbo_pipelines import settings


@pytest.fixture(scope="session")
def dagster_instance(
    make_database: Callable[[str], sa.Engine], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dg.DagsterInstance]:
    engine = make_database("dagster")
    url = engine.url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(settings.DAGSTER_HOME / "dagster.yaml", Path(home) / "dagster.yaml")
    mp = pytest.MonkeyPatch()
    mp.setenv("QBO_PIPELINES_DAGSTER_PG_URL", url)
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
        mp.undo()
