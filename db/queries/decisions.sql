-- name: DecisionAuthority :one
-- Whether a user's key may still decide on proposals, read when the decision is applied
-- (not when it was sent). FOR SHARE: a deactivation, role change or revocation committing
-- meanwhile waits for the decision's transaction, or the decision sees it.
SELECT k.status AS key_status, k.expires_at AS key_expires_at, k.user_id AS key_user_id,
       u.role AS user_role, u.deactivated_at AS user_deactivated_at
FROM api_keys k
JOIN users u ON u.org_id = k.org_id AND u.id = @user_id
WHERE k.org_id = @org_id AND k.id = @api_key_id
FOR SHARE OF k, u;
