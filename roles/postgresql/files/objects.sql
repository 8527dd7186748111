-- What the monitoring user sees of the lab's objects (tasks/monitoring_user.yml): logging in at all
-- proves the password and the database; the rest, its role, its privilege and the table's columns.
SELECT CASE WHEN to_regrole('pg_monitor') IS NULL THEN true
            ELSE pg_has_role('pg_monitor', 'MEMBER') END AS pg_monitor,
       has_table_privilege('pg_catalog.pg_stat_database', 'SELECT') AS pg_stat_database,
       ARRAY(SELECT attname || ' ' || format_type(atttypid, atttypmod)
             FROM pg_catalog.pg_attribute
             WHERE attrelid = to_regclass(%(table)s) AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum) AS columns
