-- First start of the compose PostgreSQL (docker-entrypoint-initdb.d), as the
-- superuser: the two roles of deploy/grant_app_role.py and the vector extension.
-- Passwords come from the container's environment (psql's \getenv, psql 15+).
-- On RDS/Aurora run the same statements as the master user (rds_superuser may
-- create the extension), with passwords of your own.

\getenv owner_password OWNER_DB_PASSWORD
\getenv app_password APP_DB_PASSWORD

-- Owns the schema and runs migrations. Not a superuser, no BYPASSRLS: FORCEd
-- row-level security applies to it too.
CREATE ROLE faceservice_owner LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE
    PASSWORD :'owner_password';

-- What web, worker and beat connect as: owns nothing, gets row privileges only
-- (deploy/grant_app_role.py, run by the migrate job after every migration).
CREATE ROLE faceservice_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT
    PASSWORD :'app_password';

-- POSTGRES_DB created the database; hand it (and with it the public schema,
-- owned by pg_database_owner since PostgreSQL 15) to the owner role.
ALTER DATABASE faceservice OWNER TO faceservice_owner;
REVOKE ALL ON DATABASE faceservice FROM PUBLIC;
GRANT CONNECT ON DATABASE faceservice TO faceservice_app;

\connect faceservice
-- pgvector is not a trusted extension: the superuser creates it, once.
CREATE EXTENSION IF NOT EXISTS vector;
