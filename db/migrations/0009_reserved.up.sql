-- Placeholder in branch analytics-query only: this version belongs to another branch, and
-- the migrator needs contiguous versions for 0011 to apply here. Drop this pair when
-- merging (the other branch's migration takes its place).
SELECT 1;
