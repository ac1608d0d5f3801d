-- Going back would leave sealed channels without their endpoint and signing secret (SQL
-- cannot decrypt them), so it is refused while any exist.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM alert_channels
               WHERE url_enc IS NOT NULL OR secret_enc IS NOT NULL OR prev_secret_enc IS NOT NULL) THEN
        RAISE EXCEPTION 'alert channels hold encrypted credentials that the previous schema cannot hold (SQL has no key to decrypt them); reverting 0006 would lose them';
    END IF;
END
$$;
ALTER TABLE alert_deliveries DROP COLUMN last_classification;
ALTER TABLE alert_delivery_attempts DROP COLUMN classification;
ALTER TABLE alert_channels
    DROP CONSTRAINT alert_channels_prev_secret_sealed,
    DROP CONSTRAINT alert_channels_secret_sealed,
    DROP COLUMN prev_secret_enc,
    DROP COLUMN secret_enc,
    DROP COLUMN url_enc;
DROP TABLE org_data_keys;
