DROP TABLE incident_settings;
ALTER TABLE runs DROP COLUMN blocked_by_rule;
DROP TABLE prevention_records;
DROP TABLE policy_proposals;
DROP TABLE policy_rules;
ALTER TABLE cost_records DROP COLUMN incident_id;
DROP TABLE incident_runs;
DROP TABLE incidents;
