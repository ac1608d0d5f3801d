-- Placeholder in branch console only: migration 0007 belongs to another branch, and the
-- migrator needs contiguous versions for 0008 to apply here. Drop this pair when merging
-- (the other branch's 0007 takes its place).
SELECT 1;
