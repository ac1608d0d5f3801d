DROP TABLE workflow_outbox;
DROP TABLE model_prices;
DROP TABLE cost_records;
DROP TABLE run_reservations;
DROP TABLE runs;
DROP FUNCTION limit_counters_acquire(text[], timestamptz[]);
DROP TABLE limit_counters;
DROP TABLE limits;
