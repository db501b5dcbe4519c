-- pull_fields also keeps, with pull_due false, the fields QBO changed that the source app has no
-- place for (an invoice's lines added in QBO, its customer): QBO's value stands there while the
-- source keeps its own, so a later source change of one is a conflict the push records by the
-- entity's policy (R34) instead of a silent overwrite. A write that sends the field clears it.
COMMENT ON COLUMN sync.record_state.pull_fields IS 'With pull_due: QBO fields whose value QBO holds and the source does not yet (the pull brings them). Without: fields QBO changed that the source has no place for (a later source change of one is a recorded conflict, R34). Cleared by a write that sends them.';
