"""Connect, disconnect and the one company check, driven through the CLI over real Postgres and
the QBO sandbox over HTTP (SPEC R1, R3, R30, R32)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import sqlalchemy as sa
from opsbed import OpsStack

from qbo_pipelines import companies
from qbo_pipelines.cli import main
from qbo_pipelines.defs import runner
from qbo_pipelines.qbo.app import ENV_CLIENT_ID, ENV_CLIENT_SECRET, load_app
from qbo_pipelines.source_app import demo

COMPANY_TABLES = (
    "sync.companies",
    "sync.qbo_tokens",
    "mapping.settings",
    "mapping.expense_concepts",
    "sync.ledger",
    "sync.quarantine",
    "sync.record_state",
    "sync.cursors",
)


def _rows(ops: OpsStack, realm: str) -> dict[str, int]:
    return {
        t: ops.count(f"SELECT count(*) FROM {t} WHERE realm_id = :r", r=realm)  # noqa: S608
        for t in COMPANY_TABLES
    }


def test_R1_connect_at_the_consent_page_disconnect_wipes_and_reconnect_starts_afresh(
    ops: OpsStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = ops.second_realm
    done = ops.connect_by_consent(second)
    assert done.returncode == 0, done.stderr
    assert f"connected: realm {second} (Second Company)" in done.stdout
    secret = ops.env[ENV_CLIENT_SECRET]
    assert secret not in done.stdout + done.stderr
    # The app is stored, its secret encrypted with the token key (never in clear).
    with ops.warehouse.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM sync.qbo_app")).mappings().one()
    assert stored["client_secret_enc"].startswith("gAAAAA")
    assert secret not in str(dict(stored))
    app = load_app(ops.warehouse)
    assert app is not None
    assert app.client_secret.reveal() == secret
    assert app.api_url == ops.sandbox.base_url
    assert app.redirect_uri == ops.redirect_uri

    # Later commands need no variable: the stored app is used.
    monkeypatch.delenv(ENV_CLIENT_ID)
    monkeypatch.delenv(ENV_CLIENT_SECRET)
    ops.env.pop(ENV_CLIENT_ID)
    ops.env.pop(ENV_CLIENT_SECRET)
    choices = ops.run("choices", second)
    assert choices.returncode == 0, choices.stderr
    assert "company: Second Company" in choices.stdout
    assert "account" in choices.stdout

    # Configure the company (R32), then disconnect it (R1).
    assert main(["sync", "auto", "off", "--realm", second]) == 0
    assert main(["mappings", "set", "debounce-seconds", "30", "--realm", second]) == 0
    misplaced = ["mappings", "set", "debounce-seconds", "40", "--deposit-account", "1"]
    assert main([*misplaced, "--realm", second]) == 2  # an option that does not apply: refused
    with ops.warehouse.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO mapping.expense_concepts (realm_id, concept, expense_account_id)"
                " VALUES (:r, 'Travel', '7')"
            ),
            {"r": second},
        )
    grants = [g for g in ops.sandbox.sandbox.store.grants.values() if g.realm_id == second]
    assert grants
    assert not any(g.revoked for g in grants)
    gone = ops.run("disconnect", "--realm", second)
    assert gone.returncode == 0, gone.stderr
    assert "tokens revoked" in gone.stdout
    assert all(
        g.revoked for g in ops.sandbox.sandbox.store.grants.values() if g.realm_id == second
    )  # revoked at QBO
    rows = _rows(ops, second)
    assert rows["sync.qbo_tokens"] == 0
    assert rows["mapping.settings"] == 0
    assert rows["mapping.expense_concepts"] == 0
    with ops.warehouse.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM sync.companies WHERE realm_id = :r"), {"r": second}
        ).scalar_one()
    assert status == "disconnected"
    assert companies.connected(ops.warehouse) == []
    refused = ops.run("sync", "pause", "--realm", second)
    assert refused.returncode == 2
    assert "not connected" in refused.stderr

    # A later connect starts configuration afresh: default switches, no mappings.
    again = ops.connect_by_consent(second)
    assert again.returncode == 0, again.stderr
    assert [c.realm_id for c in companies.connected(ops.warehouse)] == [second]
    assert _rows(ops, second)["mapping.settings"] == 0
    assert main(["status", "--realm", second, "--no-runs"]) == 0
    # Its products have no QBO item now: the check offers the one setting that frees them all
    # (the sync creates a Service item of each), not only a mapping per product.
    demo.seed(ops.source, contacts=4, sales=4, workers=1, seed_value=5)
    check = ops.run("mappings", "check", "--realm", second)
    items = [ln for ln in check.stdout.splitlines() if "has no QBO item" in ln]
    assert items, check.stdout
    assert all("mappings set default-income-account" in ln for ln in items), items
    unread = ops.run("mappings", "set", "default-income-account", "Services", "--realm", second)
    assert unread.returncode == 2  # the company's accounts are read by its first pull
    assert unread.stderr.strip().splitlines() == [
        "error: refused: no account of this QBO company has been read yet: run "
        "`qbo-pipelines sync pull` first (it reads the company's accounts and the rest), "
        "then map again"
    ]


def test_R1_connect_whose_callback_cannot_be_listened_on_is_a_one_line_error(
    ops: OpsStack,
) -> None:
    """Another connect waiting on the redirect URI's port, or a port that is no port."""
    port = int(ops.redirect_uri.split(":")[2].split("/")[0])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        taken = ops.run("connect", "--redirect-uri", ops.redirect_uri, "--timeout", "5")
    bad = ops.run("connect", "--redirect-uri", "http://127.0.0.1:99999/callback")
    for done, said in ((taken, f"127.0.0.1:{port}"), (bad, "99999")):
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert said in line
    assert ops.count("SELECT count(*) FROM sync.companies") == 0


def test_R2_a_company_whose_access_was_revoked_in_qbo_is_refused_by_the_sync_in_one_line(
    ops: OpsStack,
) -> None:
    second = ops.second_realm
    assert ops.connect_by_consent(second).returncode == 0
    for grant in ops.sandbox.sandbox.store.grants.values():  # the user disconnects it in QBO
        if grant.realm_id == second:
            grant.revoked = True
    ops.run("choices", second)  # QBO refuses the tokens: the company needs reconnecting
    assert [c.status for c in companies.connected(ops.warehouse)] == ["needs_reconnect"]
    for argv in (("sync", "push"), ("sync", "pull"), ("reconcile",)):
        one = ops.run(*argv, "--realm", second)
        assert one.returncode == 2, (argv, one.stdout, one.stderr)
        [line] = one.stderr.strip().splitlines()
        assert "needs reconnecting" in line
        assert "qbo-pipelines connect" in line
        every = ops.run(*argv)  # every company: named and left out, not a failed run
        assert every.returncode == 2, (argv, every.stdout, every.stderr)
        assert "needs reconnecting" in every.stdout
        for said in (one, every):
            assert "queued" not in said.stdout, argv  # no run was queued
            assert "Stack Trace" not in said.stdout + said.stderr


@pytest.mark.slow
def test_R3_a_disconnected_company_is_refused_by_a_run_the_plain_dagster_cli_starts(
    ops: OpsStack,
) -> None:
    """README's plain-dagster route (``dagster asset materialize ... --partition REALM``) for a
    company disconnected since: the run fails in one line, reads and writes nothing."""
    second = ops.second_realm
    assert ops.connect_by_consent(second).returncode == 0
    runner.ensure_partition(second, warehouse=ops.warehouse)  # as its first run adds it
    assert ops.run("disconnect", "--realm", second, "--no-revoke").returncode == 0
    before = _rows(ops, second)
    done = subprocess.run(
        [
            sys.executable, "-m", "dagster", "asset", "materialize",
            "-m", "qbo_pipelines.defs.definitions",
            "--select", "raw/source/items,staged/qbo/items,pushed/qbo/items",
            "--partition", second,
        ],
        env=ops.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"{second!r} is not connected" in done.stdout + done.stderr
    assert _rows(ops, second) == before
    assert ops.count("SELECT count(*) FROM sync.ledger WHERE realm_id = :r", r=second) == 0
    assert ops.count("SELECT count(*) FROM raw_source.items") == 0


def test_R3_an_unknown_company_is_refused_everywhere_and_leaves_nothing_behind(
    ops: OpsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    realm = ops.sandbox.realm_id
    assert ops.connect_by_consent(realm).returncode == 0
    capsys.readouterr()
    unknown = "123"
    commands = [
        ["sync", "push", "--realm", unknown],
        ["sync", "pause", "--realm", unknown],
        ["sync", "resume", "--realm", unknown],
        ["sync", "auto", "off", "--realm", unknown],
        ["mappings", "list", "--realm", unknown],
        ["mappings", "set", "debounce-seconds", "10", "--realm", unknown],
        ["mappings", "check", "--realm", unknown],
        ["choices", unknown],
        ["disconnect", "--realm", unknown],
        ["status", "--realm", unknown],
        ["materialize", "--select", "pushed/qbo/items", "--partition", unknown],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, (argv, err)  # one line, no traceback
        assert f"company '{unknown}' is not connected" in err, (argv, err)
        assert realm in err, (argv, err)  # lists the connected ones
    from qbo_pipelines.defs import runner

    with pytest.raises(companies.NotConnectedError):
        runner.submit("push_job", unknown, warehouse=ops.warehouse)
    with pytest.raises(companies.NotConnectedError):
        runner.push_company(unknown, warehouse=ops.warehouse)
    with pytest.raises(companies.NotConnectedError):
        runner.ensure_partition(unknown, warehouse=ops.warehouse)
    assert set(_rows(ops, unknown).values()) == {0}
    import dagster as dg

    instance = dg.DagsterInstance.get()
    try:
        assert not instance.has_dynamic_partition("qbo_companies", unknown)
        assert instance.get_runs(dg.RunsFilter(tags={"qbo_pipelines/realm": unknown})) == []
    finally:
        instance.dispose()


def test_R32_a_mapping_set_before_the_first_pull_says_to_pull_first(
    ops: OpsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Right after connecting, the company's QBO choices have not been read: `mappings set`
    says so and what to run, not that the company has no such tax code."""
    realm = ops.sandbox.realm_id
    assert ops.connect_by_consent(realm).returncode == 0
    demo.seed(ops.source, contacts=4, sales=4, workers=1, seed_value=5)
    capsys.readouterr()
    code = main(["mappings", "set", "tax-rate", "GST 10%", "GST", "--realm", realm])
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert code != 0
    assert "has been read yet: run `qbo-pipelines sync pull` first" in said, said
    assert "Traceback" not in said
    assert main(["sync", "pull", "--realm", realm]) == 0
    assert main(["mappings", "set", "tax-rate", "GST 10%", "GST", "--realm", realm]) == 0


def test_R12_mapping_a_tax_rate_to_a_code_of_another_percentage_warns(
    ops: OpsStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """QBO computes an invoice's tax from its lines' tax codes: a 25% source rate mapped to a
    10% code makes every invoice using it total less in QBO than in the source app (and the
    receipts of the source total be refused). `mappings set tax-rate` says so when it maps
    one; a code of the same rate maps without a word."""
    realm = ops.sandbox.realm_id
    assert ops.connect_by_consent(realm).returncode == 0
    demo.seed(ops.source, contacts=4, sales=4, workers=1, seed_value=5)
    assert main(["sync", "pull", "--realm", realm]) == 0  # QBO's tax codes and their rates
    capsys.readouterr()
    assert main(["mappings", "set", "tax-rate", "Luxury 25%", "GST", "--realm", realm]) == 0
    out = capsys.readouterr().out
    assert "tax-rate 'Luxury 25%' -> GST" in out
    assert "warning: 'Luxury 25%' is 25% in the source app but QBO tax code GST charges 10%" in out
    assert main(["mappings", "set", "tax-rate", "GST 10%", "GST", "--realm", realm]) == 0
    out = capsys.readouterr().out
    assert "tax-rate 'GST 10%' -> GST" in out
    assert "warning" not in out
