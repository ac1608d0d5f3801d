-- name: RunFeedbackInsert :one
-- Feedback is recorded once per feedback id; a retry returns nothing (the caller reads the
-- stored one).
INSERT INTO run_feedback (org_id, id, feedback_id, run_id, score, label, comment, api_key_id, user_id)
VALUES (@org_id, @id, @feedback_id, @run_id, @score, @label, @comment, @api_key_id, @user_id)
ON CONFLICT (org_id, feedback_id) DO NOTHING
RETURNING *;

-- name: RunFeedbackGet :one
SELECT * FROM run_feedback WHERE org_id = @org_id AND feedback_id = @feedback_id;
