-- A webhook channel's URL is a credential (a Slack incoming webhook URL carries its token in
-- the path; others put one in the query). It is stored as a Fernet ciphertext made with the
-- token store's key (QBO_PIPELINES_TOKEN_KEY), like the channel secrets; `target` keeps only
-- the masked form shown by `notify list`. Channels added before are sealed by the code the first
-- time channels are read (Fernet is not available in SQL).
ALTER TABLE sync.notification_channels ADD COLUMN IF NOT EXISTS target_enc text;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'notification_channels_target_encrypted') THEN
        ALTER TABLE sync.notification_channels ADD CONSTRAINT notification_channels_target_encrypted
            CHECK (target_enc IS NULL OR target_enc LIKE 'gAAAAA%');
    END IF;
END $$;
COMMENT ON COLUMN sync.notification_channels.target_enc IS
    'webhook: Fernet ciphertext of the URL (a credential); target holds its masked form. NULL for email channels.';
