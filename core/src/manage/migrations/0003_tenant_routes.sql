-- The routes each tenant may publish in its APIs (a JSON array), assigned by the admin: a
-- route is one tenant's at most.
ALTER TABLE tenants ADD COLUMN routes TEXT NOT NULL DEFAULT '[]';
