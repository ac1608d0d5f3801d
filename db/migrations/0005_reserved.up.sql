-- Placeholder in branch trust-ssrf-secrets only: migration 0005 belongs to another branch,
-- and the migrator needs contiguous versions for 0006 to apply here. Drop this pair when
-- merging (the other branch's 0005 takes its place).
SELECT 1;
