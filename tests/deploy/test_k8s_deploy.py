"""The Kubernetes deployment in ``dagster_home/k8s/`` is valid without a cluster (issue 12).

* ``dagster.yaml`` loads through Dagster's own instance config schema; its run launcher is
  dagster-k8s's ``K8sRunLauncher`` and its config, the queued run coordinator's and the Postgres
  storage's validate against those classes' own schemas, with every ``{env: ...}`` resolved by
  Dagster's config processing;
* the queue's tag limits, applied by Dagster's own counter, let one run per company start and
  leave other companies free;
* no secret is written in any file: credentials are environment variables from Secrets, and
  every Secret referenced is one ``docs/scale.md`` tells the reader to create;
* the Helm values validate against the chart's values schema (the subset this project sets,
  ``dagster_chart_values.subset.schema.json``, documented inside) and say what ``dagster.yaml``
  says;
* the receiver and migration manifests are Kubernetes objects (deserialized by the Kubernetes
  client's own models, nothing unknown), their commands parse with the product's CLI;
* the Dockerfile has a pinned base, installs from PyPI only at pinned versions, runs as non-root.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet
from dagster._config import process_config, validate_config
from dagster._core.instance.config import class_from_code_pointer, dagster_instance_config
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClassData
from dagster._utils.tags import TagConcurrencyLimitsCounter
from dagster_k8s import K8sRunLauncher
from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import get_conn_string
from kubernetes.client import ApiClient

from qbo_pipelines import cli, settings
from qbo_pipelines.defs import runner
from qbo_pipelines.defs.push import REALM_TAG

K8S = settings.PROJECT_ROOT / "dagster_home" / "k8s"
HERE = Path(__file__).parent
SCALE_DOC = settings.PROJECT_ROOT / "docs" / "scale.md"
SECRET_WORDS = ("password", "secret", "token", "verifier", "credential", "url")
PG_ENV = {
    "DAGSTER_PG_HOST": "pg.internal",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "qbo_pipelines",
    "DAGSTER_PG_PASSWORD": "from-the-secret",
    "DAGSTER_PG_DB": "dagster",
}


def _yaml(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


def _manifests() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / "qbo-pipelines.yaml").read_text()) if d]


def _instance() -> dict[str, Any]:
    config, custom_class = dagster_instance_config(str(K8S))
    assert custom_class is None
    return dict(config)


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted path, leaf value) of every leaf."""
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


# ---------------------------------------------------------------------------------------------
# The instance


def test_instance_config_validates_with_dagster_and_dagster_k8s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _instance()
    launcher = class_from_code_pointer(
        config["run_launcher"]["module"], config["run_launcher"]["class"]
    )
    assert launcher is K8sRunLauncher  # resolvable: the class dagster-k8s ships
    coordinator = type(
        ConfigurableClassData(
            config["run_coordinator"]["module"],
            config["run_coordinator"]["class"],
            yaml.safe_dump(config["run_coordinator"]["config"]),
        ).rehydrate(as_type=dg.QueuedRunCoordinator)
    )
    for key, klass in (("run_launcher", launcher), ("run_coordinator", coordinator)):
        result = validate_config(klass.config_type(), config[key]["config"])
        assert result.success, result.errors

    # Postgres storage: dagster-postgres's schema; the env vars resolved as each pod resolves
    # them, into a connection string on the external server.
    storage = config["storage"]["postgres"]
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    processed = process_config(DagsterPostgresStorage.config_type(), storage)
    assert processed.success, processed.errors
    db = processed.value["postgres_db"]  # type: ignore[index]
    assert get_conn_string(
        username=db["username"],
        password=db["password"],
        hostname=db["hostname"],
        db_name=db["db_name"],
        port=str(db["port"]),
        params=db.get("params"),
    ) == ("postgresql://qbo_pipelines:from-the-secret@pg.internal:5432/dagster?sslmode=require")

    # The launcher's own config processing: env vars resolved, defaults filled in.
    monkeypatch.setenv("DAGSTER_K8S_INSTANCE_CONFIG_MAP", "qbo-pipelines-instance")
    monkeypatch.setenv("DAGSTER_K8S_PIPELINE_RUN_NAMESPACE", "qbo-pipelines")
    monkeypatch.setenv("DAGSTER_K8S_PG_PASSWORD_SECRET", "qbo-pipelines-dagster-pg")
    launched = process_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launched.success, launched.errors
    value = launched.value
    assert value["instance_config_map"] == "qbo-pipelines-instance"  # type: ignore[index]
    assert value["job_namespace"] == "qbo-pipelines"  # type: ignore[index]
    assert value["fail_pod_on_run_failure"] is True  # type: ignore[index]

    # A pod that died must not hold its company's slot: run monitoring, then one retry.
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_retries"] == {"enabled": True, "max_retries": 1}


def test_instance_config_refuses_what_dagster_refuses(tmp_path: Path) -> None:
    """The check has teeth: a misspelled launcher key fails Dagster's class schema, a misspelled
    top-level key fails the instance schema."""
    config = _yaml("dagster.yaml")
    config["run_launcher"]["config"]["env_secret"] = ["oops"]
    result = validate_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert not result.success
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dagster.yaml").write_text(yaml.safe_dump({**_yaml("dagster.yaml"), "run_queues": {}}))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dagster_instance_config(str(bad))


def _run(realm: str, *, ui_partition_only: bool = False) -> DagsterRun:
    """A run tagged as the product tags company runs (or as the UI tags a partition launch)."""
    tags = {runner.PARTITION_TAG: realm}
    if not ui_partition_only:
        tags[REALM_TAG] = realm
    return DagsterRun(job_name="push_job", run_id=str(uuid.uuid4()), tags=tags)


def test_queue_starts_one_run_per_company_and_leaves_other_companies_free() -> None:
    """Dagster's own tag-limit counter over the coordinator that dagster.yaml configures."""
    config = _instance()["run_coordinator"]
    coordinator = ConfigurableClassData(
        config["module"], config["class"], yaml.safe_dump(config["config"])
    ).rehydrate(as_type=dg.QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs > 1
    assert {lim["key"] for lim in queue.tag_concurrency_limits} == {
        REALM_TAG,
        runner.PARTITION_TAG,
    }
    busy = _run("111")
    counter = TagConcurrencyLimitsCounter(list(queue.tag_concurrency_limits), [busy])
    assert counter.is_blocked(_run("111"))  # the company's next run waits
    assert counter.is_blocked(_run("111", ui_partition_only=True))  # also when launched in the UI
    first_of_other = _run("222")
    assert not counter.is_blocked(first_of_other)  # another company is free
    counter.update_counters_with_launched_item(first_of_other)
    assert counter.is_blocked(_run("222"))  # ... for one run
    assert not counter.is_blocked(_run("333"))


# ---------------------------------------------------------------------------------------------
# Secrets


def _secret_names() -> set[str]:
    """Every Kubernetes Secret the deployment files refer to."""
    names: set[str] = set()
    values = _yaml("values.yaml")
    names.add(values["global"]["postgresqlSecretName"])
    instance = _yaml("dagster.yaml")
    names.update(instance["run_launcher"]["config"]["env_secrets"])
    for path, value in _walk(values) + [leaf for doc in _manifests() for leaf in _walk(doc)]:
        if re.search(r"(envSecrets\[\d+\]|secretRef|secretKeyRef)\.name$", path):
            names.add(value)
    return names


_REFERENCE = re.compile(r"(secretname|envsecrets\[\d+\]\.name|secretref\.name|secretkeyref\.\w+)$")


def _secrets_written(
    instance: dict[str, Any], values: dict[str, Any], manifests: list[dict[str, Any]], text: str
) -> list[str]:
    """Where a credential is written instead of referenced (empty: none)."""
    found = [
        f"dagster.yaml storage{path} = {value!r}"
        for path, value in _walk(instance["storage"])
        if not path.endswith(".env") and ".params." not in path
    ]
    launcher = instance["run_launcher"]["config"]
    found += [
        f"dagster.yaml run_launcher.{name} is not an env var"
        for name in ("instance_config_map", "job_namespace", "postgres_password_secret")
        if set(launcher[name]) != {"env"}
    ]
    found += [
        f"dagster.yaml env_vars {entry!r}"
        for entry in launcher["env_vars"]
        if any(w in entry.split("=")[0].lower() for w in SECRET_WORDS)
    ]
    if values.get("generatePostgresqlPasswordSecret") is not False:
        found.append("values.yaml: the chart would generate (and print) a Postgres password")
    for doc in [values, *manifests]:
        leaves = dict(_walk(doc))
        for path, value in leaves.items():
            name = path.rsplit(".", 1)[-1].lower()
            secretish = any(w in name for w in SECRET_WORDS)
            if isinstance(value, str) and secretish and not _REFERENCE.search(path.lower()):
                found.append(f"{path} = {value!r}")
            # a literal env value only for a setting, never for a secret
            env_name = re.search(r"\.env\[\d+\]\.name$", path)
            literal = path[: -len("name")] + "value" in leaves
            if env_name and literal and any(w in str(value).lower() for w in SECRET_WORDS):
                found.append(f"{path}: {value} has a literal value")
    if re.search(r"postgres(ql)?://[^\s/:]+:[^\s@]+@", text):
        found.append("a database URL with a password")
    # (not \b: a key may start with '-' or '_', which a word boundary does not precede)
    if re.search(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=", text):
        found.append("a Fernet key")
    return found


def test_no_secret_is_written_in_the_deployment_files() -> None:
    text = "\n".join(p.read_text() for p in K8S.iterdir() if p.is_file())
    instance, values, manifests = _yaml("dagster.yaml"), _yaml("values.yaml"), _manifests()
    assert _secrets_written(instance, values, manifests, text) == []

    # ... and the check finds them when they are there
    values["postgresql"]["postgresqlPassword"] = "hunter2"
    manifests[1]["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "QBO_PIPELINES_QBO_CLIENT_SECRET", "value": "abc"}
    )
    instance["storage"]["postgres"]["postgres_db"]["password"] = "hunter2"
    key = Fernet.generate_key().decode()
    found = _secrets_written(
        instance, values, manifests, text + f"\npostgresql://u:hunter2@h/db {key}"
    )
    assert len(found) == 5, found


def test_every_secret_referenced_is_one_the_docs_create() -> None:
    doc = SCALE_DOC.read_text()
    created = set(re.findall(r"kubectl -n qbo-pipelines create secret generic ([a-z0-9-]+)", doc))
    assert _secret_names() <= created, _secret_names() - created


# ---------------------------------------------------------------------------------------------
# Helm values


def test_helm_values_validate_against_the_chart_values_schema() -> None:
    schema = json.loads((HERE / "dagster_chart_values.subset.schema.json").read_text())
    values = _yaml("values.yaml")
    jsonschema.validate(values, schema)
    # the schema refuses what the chart refuses
    broken = yaml.safe_load(yaml.safe_dump(values))
    queued = broken["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    queued["tagConcurrencyLimit"] = queued.pop("tagConcurrencyLimits")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    broken = yaml.safe_load(yaml.safe_dump(values))
    broken["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] = ["qbo-pipelines-postgres"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_helm_values_say_what_the_instance_config_says() -> None:
    values = _yaml("values.yaml")
    instance = _instance()
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = instance["run_coordinator"]["config"]
    assert daemon["runCoordinator"]["type"] == instance["run_coordinator"]["class"]
    assert queued["maxConcurrentRuns"] == coordinator["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == coordinator["tag_concurrency_limits"]
    assert queued["dequeueUseThreads"] == coordinator["dequeue_use_threads"]
    assert queued["dequeueNumWorkers"] == coordinator["dequeue_num_workers"]
    monitoring = instance["run_monitoring"]
    assert daemon["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "maxResumeRunAttempts": monitoring["max_resume_run_attempts"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
    }
    assert daemon["runRetries"] == {
        "enabled": instance["run_retries"]["enabled"],
        "maxRetries": instance["run_retries"]["max_retries"],
    }
    assert values["runLauncher"]["type"] == instance["run_launcher"]["class"]
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = instance["run_launcher"]["config"]
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    # the chart writes the storage settings into the instance; dagster.yaml passes them on
    settings_passed = [v for v in launcher["env_vars"] if "=" not in v]
    assert k8s["envVars"] == [v for v in launcher["env_vars"] if "=" in v]
    storage_env = {v for p, v in _walk(instance["storage"]) if p.endswith(".env")} - {
        "DAGSTER_PG_PASSWORD"
    }  # from postgres_password_secret in the run pod
    assert set(settings_passed) == storage_env
    assert k8s["failPodOnRunFailure"] == launcher["fail_pod_on_run_failure"]
    assert k8s["resources"] == launcher["resources"]
    assert k8s["labels"] == launcher["labels"]
    assert k8s["loadInclusterConfig"] == launcher["load_incluster_config"]
    assert values["global"]["dagsterHome"] == launcher["dagster_home"]
    assert (
        values["postgresql"]["postgresqlParams"]
        == instance["storage"]["postgres"]["postgres_db"]["params"]
    )
    assert values["telemetry"] == instance["telemetry"]

    # The code location the chart serves is the one workspace.yaml loads locally, with the
    # same secrets as the run pods.
    [deployment] = values["dagster-user-deployments"]["deployments"]
    workspace = yaml.safe_load((settings.PROJECT_ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", module]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    [server] = values["dagsterWebserver"]["workspace"]["servers"]
    location = workspace["load_from"][0]["python_module"]["location_name"]
    assert server == {"host": deployment["name"], "port": deployment["port"], "name": location}
    assert location == runner.LOCATION_NAME  # runs created by runner.submit find their location
    assert [s["name"] for s in deployment["envSecrets"]] == launcher["env_secrets"]


# ---------------------------------------------------------------------------------------------
# The receiver and the migration Job


def test_receiver_and_migration_manifests_are_kubernetes_objects() -> None:
    api = ApiClient()
    kinds = {}
    for doc in _manifests():
        model = {"Job": "V1Job", "Deployment": "V1Deployment", "Service": "V1Service"}[doc["kind"]]

        class _Response:
            data = json.dumps(doc)

        obj = api.deserialize(_Response(), model)
        # every key known to the model (a typo would be dropped by the round trip)
        assert api.sanitize_for_serialization(obj) == doc
        kinds[doc["kind"]] = doc
    deployment, service, job = kinds["Deployment"], kinds["Service"], kinds["Job"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    [container] = pod["spec"]["containers"]
    [port] = container["ports"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["type"] == "ClusterIP"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"

    parser = cli.build_parser()
    args = parser.parse_args(container["args"][1:])
    assert (args.command, args.webhooks_command) == ("webhooks", "serve")
    assert args.port == port["containerPort"]
    [migrate] = job["spec"]["template"]["spec"]["containers"]
    assert parser.parse_args(migrate["args"][1:]).command == "db"
    for spec in (pod["spec"], job["spec"]["template"]["spec"]):
        assert spec["securityContext"]["runAsNonRoot"] is True
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["args"][0] == "qbo-pipelines"  # the console script the image installs


# ---------------------------------------------------------------------------------------------
# The image


def _dockerfile() -> list[str]:
    """Instructions with continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (K8S / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def test_dockerfile_pinned_base_pypi_only_pinned_versions_non_root() -> None:
    lines = _dockerfile()
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert froms
    for image in froms:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image

    runs = [line[4:] for line in lines if line.upper().startswith("RUN ")]
    installs = [cmd for run in runs for cmd in run.split("&&") if "pip install" in cmd]
    assert installs
    for cmd in installs:
        words = shlex.split(cmd)
        assert words[words.index("--index-url") + 1] == "https://pypi.org/simple"
        assert not {"--extra-index-url", "--find-links", "-f", "--trusted-host"} & set(words)
        assert "--constraint" in words
        for word in words:
            assert "://" not in word or word == "https://pypi.org/simple", word
            assert not word.startswith(("git+", "hg+", "svn+", "bzr+")), word
            if re.match(r"^[A-Za-z][\w.-]*(\[[\w,]+\])?[<>=!~]", word):
                assert "==" in word, word  # any package named on the line is pinned
    assert not any(re.search(r"\b(curl|wget|ADD\s+https?)\b", line) for line in lines)
    env = " ".join(line for line in lines if line.upper().startswith("ENV "))
    assert "PIP_INDEX_URL=https://pypi.org/simple" in env

    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users
    last = users[-1].split(":")[0]
    assert last not in ("root", "0")
    assert lines.index(next(line for line in lines if line.startswith(f"USER {users[-1]}"))) > max(
        i for i, line in enumerate(lines) if line.upper().startswith("RUN ")
    )
    cmd = json.loads(next(line for line in lines if line.startswith("CMD "))[4:])
    workspace = yaml.safe_load((settings.PROJECT_ROOT / "workspace.yaml").read_text())
    assert (
        cmd[cmd.index("--module-name") + 1]
        == (workspace["load_from"][0]["python_module"]["module_name"])
    )


def test_image_constraints_pin_every_dependency_as_pyproject_does() -> None:
    import tomllib

    pins = {}
    for line in (K8S / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    project = tomllib.loads((settings.PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    required = list(project["dependencies"]) + ["dagster-k8s==0.29.27"]
    for requirement in required:
        name, _, version = requirement.partition("==")
        name = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
        assert pins.get(name) == version, f"{name}: pyproject {version}, image {pins.get(name)}"
    dagster_k8s_pin = [w for w in " ".join(_dockerfile()).split() if "dagster-k8s" in w]
    assert dagster_k8s_pin == ['"dagster-k8s==0.29.27"']
