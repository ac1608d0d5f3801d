DROP TABLE audit_checkpoints;
-- The in-app channels stay: organizations made since need theirs, and ListChannels of the
-- previous version would only make them again.
