-- One QBO request budget per company, shared by every thread and process (SPEC R41). Idempotent.
--
-- qbo_pipelines.qbo.limiter.PgRateLimiter keeps QBO's per-company limits here:
-- * the sliding windows (500 requests/min, 10/s, 40 batch calls/min) as a short log of granted
--   calls, written under a row lock on the company's sync.rate_budget row, with the database's
--   clock, so every process counts the same calls against the same time;
-- * a shared pause (paused_until) set after any 429, which holds back every process;
-- * the 10 requests in flight as session-level advisory locks (sync.rate_budget_take_slot):
--   Postgres releases them when the holder's connection ends, so a process killed with -9 frees
--   its slots by itself.

CREATE TABLE IF NOT EXISTS sync.rate_budget (
    budget_key    text        PRIMARY KEY,        -- '<api base url>#<realm id>'
    lock_key      integer     NOT NULL,           -- advisory-lock namespace of the in-flight slots
    paused_until  timestamptz,                    -- after a 429: no new call before this
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE sync.rate_budget IS
    'One row per QBO company budget: the shared 429 pause; the row lock serialises grants (R41).';

CREATE TABLE IF NOT EXISTS sync.rate_budget_call (
    budget_key  text        NOT NULL,
    at          timestamptz NOT NULL,
    batch       boolean     NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_budget_call_key_at_idx ON sync.rate_budget_call (budget_key, at);
COMMENT ON TABLE sync.rate_budget_call IS
    'Calls granted in the last minutes (pruned as grants are made): the sliding-window log (R41).';

-- The first free in-flight slot in 0..slots-1 (skipping ones this session already holds), taken
-- as a session-level advisory lock (lock_key, slot); NULL when every slot is taken.
CREATE OR REPLACE FUNCTION sync.rate_budget_take_slot(lock_key integer, slots integer,
                                                      skip integer[])
RETURNS integer
LANGUAGE plpgsql
AS $$
DECLARE
    s integer;
BEGIN
    FOR s IN 0 .. slots - 1 LOOP
        CONTINUE WHEN s = ANY (skip);
        IF pg_try_advisory_lock(lock_key, s) THEN
            RETURN s;
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
