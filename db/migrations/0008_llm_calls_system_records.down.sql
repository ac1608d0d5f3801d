DROP INDEX runs_retry_of;
ALTER TABLE runs DROP COLUMN retry_of;
DROP TABLE run_feedback;
DROP TABLE system_records;
ALTER TABLE model_prices
    DROP COLUMN reasoning_micros_per_mtok,
    DROP COLUMN cache_write_micros_per_mtok,
    DROP COLUMN cache_read_micros_per_mtok;
DROP TABLE llm_calls;
