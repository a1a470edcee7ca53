-- Admin tokens may be limited to endpoint groups (`scopes`, a JSON array of group names;
-- NULL reaches every group) and belong to a team; dashboard users may belong to a team.
-- A principal with a team changes only the APIs of that team.
ALTER TABLE admin_tokens ADD COLUMN scopes TEXT;
ALTER TABLE admin_tokens ADD COLUMN team TEXT;
ALTER TABLE users ADD COLUMN team TEXT;
