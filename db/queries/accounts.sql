-- name: OrgCreate :one
INSERT INTO organizations (id, name, time_zone)
VALUES (@id, @name, @time_zone)
RETURNING *;

-- name: OrgGet :one
SELECT * FROM organizations WHERE id = @id;

-- name: OrgList :many
SELECT * FROM organizations ORDER BY id;

-- name: OrgUpdate :one
UPDATE organizations
SET name       = coalesce(sqlc.narg('name'), name),
    time_zone  = coalesce(sqlc.narg('time_zone'), time_zone),
    updated_at = now()
WHERE id = @id
RETURNING *;

-- name: ProjectCreate :one
INSERT INTO projects (org_id, id, name, description)
VALUES (@org_id, @id, @name, @description)
RETURNING *;

-- name: ProjectGet :one
SELECT * FROM projects WHERE org_id = @org_id AND id = @id;

-- name: ProjectList :many
SELECT * FROM projects
WHERE org_id = @org_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: ProjectUpdate :one
UPDATE projects
SET name        = coalesce(sqlc.narg('name'), name),
    description = coalesce(sqlc.narg('description'), description),
    updated_at  = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: AgentCreate :one
INSERT INTO agents (org_id, id, project_id, name, description)
VALUES (@org_id, @id, @project_id, @name, @description)
RETURNING *;

-- name: AgentGet :one
SELECT * FROM agents WHERE org_id = @org_id AND id = @id;

-- name: AgentList :many
SELECT * FROM agents
WHERE org_id = @org_id
  AND (@project_id::text = '' OR project_id = @project_id)
  AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: AgentUpdate :one
UPDATE agents
SET name        = coalesce(sqlc.narg('name'), name),
    description = coalesce(sqlc.narg('description'), description),
    updated_at  = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: UserCreate :one
INSERT INTO users (org_id, id, email, display_name, role)
VALUES (@org_id, @id, @email, @display_name, @role)
RETURNING *;

-- name: UserGet :one
SELECT * FROM users WHERE org_id = @org_id AND id = @id;

-- name: UserList :many
SELECT * FROM users
WHERE org_id = @org_id AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: UserUpdate :one
UPDATE users
SET display_name   = coalesce(sqlc.narg('display_name'), display_name),
    role           = coalesce(sqlc.narg('role'), role),
    deactivated_at = CASE
        WHEN sqlc.narg('deactivated')::boolean IS NULL THEN deactivated_at
        WHEN sqlc.narg('deactivated')::boolean THEN coalesce(deactivated_at, now())
        ELSE NULL
    END,
    updated_at     = now()
WHERE org_id = @org_id AND id = @id
RETURNING *;

-- name: UserCountActiveAdmins :one
SELECT count(*) FROM users
WHERE org_id = @org_id AND role = 'admin' AND deactivated_at IS NULL;

-- name: OrgGetForUpdate :one
SELECT * FROM organizations WHERE id = @id FOR UPDATE;

-- name: ProjectGetForUpdate :one
SELECT * FROM projects WHERE org_id = @org_id AND id = @id FOR UPDATE;

-- name: AgentGetForUpdate :one
SELECT * FROM agents WHERE org_id = @org_id AND id = @id FOR UPDATE;

-- name: UserGetForUpdate :one
SELECT * FROM users WHERE org_id = @org_id AND id = @id FOR UPDATE;
