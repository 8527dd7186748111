-- Database Monitoring's explain plans: the agent, as the monitoring user, asks for a statement's
-- plan (never its result) through this function, which runs EXPLAIN with its owner's rights
-- (postgres). As Datadog's "Setting up Database Monitoring for self-hosted Postgres" defines it.
-- Written by the postgresql role (roles/postgresql/files/explain_statement.sql); the role
-- replaces it when this file changes.
CREATE OR REPLACE FUNCTION datadog.explain_statement(
   l_query TEXT,
   OUT explain JSON
)
RETURNS SETOF JSON AS
$$
DECLARE
curs REFCURSOR;
plan JSON;

BEGIN
   OPEN curs FOR EXECUTE pg_catalog.concat('EXPLAIN (FORMAT JSON) ', l_query);
   FETCH curs INTO plan;
   CLOSE curs;
   RETURN QUERY SELECT plan;
END;
$$
LANGUAGE 'plpgsql'
RETURNS NULL ON NULL INPUT
SECURITY DEFINER;
