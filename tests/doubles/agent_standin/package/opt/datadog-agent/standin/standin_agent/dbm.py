"""Stand-in for Database Monitoring in Datadog's Postgres check (`dbm: true`): query metrics and plans.

What Datadog's check (datadog_checks.postgres, statements.py and statement_samples.py) does, kept to
the part the lab's setup decides, with its names, events and warnings:
- Query metrics: as the monitoring user it reads pg_stat_statements (joined to pg_roles and
  pg_database), signs each statement (compute_sql_signature of the obfuscated text), and keeps the
  previous run's counters: only the difference since then is sent, so a first run sends nothing.
  The rows go out as one `dbm-metrics` event (`postgres_rows`), from which Datadog derives
  postgresql.queries.count, .time and .rows tagged query_signature, db and user (the fake API does
  that part). It also sends postgresql.pg_stat_statements.max and .count.
- Plans: each explainable statement running in the instance's database (pg_stat_activity, other
  sessions) is explained through datadog.explain_statement and sent as a `dbm-samples` plan event.
- A setup that is missing gives Datadog's own warnings (warning_with_tags: the message, a newline,
  then the sorted key=value tags): pg_stat_statements not preloaded, the extension not created,
  the explain function missing. A missing `datadog` schema gives no warning, only the error tag.
What it leaves out: the Go obfuscator (the check's Python stub normalises whitespace only, which
pg_stat_statements' own normalisation makes enough here), activity snapshots, schemas and settings
collection, and the separate collection intervals (everything runs with the check).
"""
import json
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

from datadog_checks.base.utils.db.sql import compute_sql_signature

try:
    import datadog_agent
except ImportError:
    from datadog_checks.base.stubs import datadog_agent

from . import config

DOCS = 'https://docs.datadoghq.com/database_monitoring/setup_postgres/troubleshooting#%s'
NOT_LOADED = 'pg-stat-statements-not-loaded'
NOT_CREATED = 'pg-stat-statements-not-created'
UNDEFINED_EXPLAIN = 'undefined-explain-function'
EXPLAIN_FUNCTION = 'datadog.explain_statement'

STATEMENTS_QUERY = """
SELECT {cols}
  FROM pg_stat_statements as pg_stat_statements
  LEFT JOIN pg_roles
         ON pg_stat_statements.userid = pg_roles.oid
  LEFT JOIN pg_database
         ON pg_stat_statements.dbid = pg_database.oid
  WHERE query != '<insufficient privilege>'
  AND query NOT LIKE 'EXPLAIN %%'
"""
METRIC_COLUMNS = frozenset({
    'calls', 'rows', 'total_time', 'total_exec_time', 'shared_blks_hit', 'shared_blks_read',
    'shared_blks_dirtied', 'shared_blks_written', 'local_blks_hit', 'local_blks_read', 'local_blks_dirtied',
    'local_blks_written', 'temp_blks_read', 'temp_blks_written', 'blk_read_time', 'blk_write_time',
})
TAG_COLUMNS = frozenset({'datname', 'rolname', 'query'})
REQUIRED_COLUMNS = frozenset({'calls', 'query', 'rows'})
ACTIVITY_QUERY = """
SELECT DISTINCT query FROM pg_stat_activity
 WHERE datname = %s AND pid != pg_backend_pid() AND query != '' AND query NOT LIKE 'EXPLAIN %%'
   AND query NOT LIKE '%%explain_statement%%' AND query NOT LIKE '<%%'
"""
EXPLAINABLE = ('select', 'table', 'delete', 'insert', 'replace', 'update', 'with')


def warning_with_tags(message, *args, **tags):
    """Datadog's format: the message, a newline, the sorted key=value tags."""
    if args:
        message = message % args
    return '{}\n{}'.format(message, ' '.join('{}={}'.format(k, v) for k, v in sorted(tags.items())))


def query_metrics_event(hostname, tags, rows, interval, postgres_version):
    """The dbm-metrics event of one run: ROWS are pg_stat_statements rows (differences since the last run) with
    query_signature, datname, rolname, calls, rows, total_exec_time or total_time (ms)..."""
    return {'host': hostname, 'timestamp': time.time() * 1000, 'min_collection_interval': interval, 'tags': tags,
            'postgres_rows': rows, 'postgres_version': postgres_version, 'ddagentversion': config.version(),
            'ddagenthostname': hostname}


class DatabaseMonitoring:
    def __init__(self, check):
        self.check = check
        self.previous = {}

    @property
    def hostname(self):
        return datadog_agent.get_hostname()

    def run(self, conn, dbname, tags):
        self.dbname, self.tags = dbname, tags
        self.tags_no_db = [t for t in tags if not t.startswith('db:')]
        self.statement_metrics(conn)
        self.plans(conn)

    # ---- query metrics -----------------------------------------------------------------------

    def _error(self, conn, exc):
        conn.rollback()
        tag = 'error:database-{}'.format(type(exc).__name__)
        pgerror = str(getattr(exc, 'pgerror', '') or exc)
        if isinstance(exc, psycopg2.errors.ObjectNotInPrerequisiteState) and 'pg_stat_statements must be loaded' in pgerror:
            tag += '-pg_stat_statements_not_loaded'
            self.check.warning(warning_with_tags(
                "Unable to collect statement metrics because pg_stat_statements extension is not loaded in "
                "database '%s'. See " + DOCS + " for more details", self.dbname, NOT_LOADED,
                host=self.hostname, dbname=self.dbname, code=NOT_LOADED))
        elif isinstance(exc, psycopg2.errors.UndefinedTable) and 'pg_stat_statements' in pgerror:
            tag += '-pg_stat_statements_not_created'
            self.check.warning(warning_with_tags(
                "Unable to collect statement metrics because pg_stat_statements is not created in database "
                "'%s'. See " + DOCS + " for more details", self.dbname, NOT_CREATED,
                host=self.hostname, dbname=self.dbname, code=NOT_CREATED))
        else:
            self.check.warning(warning_with_tags(
                "Unable to collect statement metrics because of an error running queries in database '%s'. "
                "See https://docs.datadoghq.com/database_monitoring/troubleshooting for help: %s",
                self.dbname, str(exc), host=self.hostname, dbname=self.dbname))
        self.check.count('dd.postgres.statement_metrics.error', 1, tags=self.tags + [tag])

    def _rows(self, conn):
        with conn.cursor() as cur:
            cur.execute(STATEMENTS_QUERY.format(cols='*') + ' LIMIT 0')
            available = {d[0] for d in cur.description}
        missing = REQUIRED_COLUMNS - available
        if missing:
            self.check.warning(warning_with_tags(
                'Unable to collect statement metrics because required fields are unavailable: %s.',
                ', '.join(sorted(missing)), host=self.hostname, dbname=self.dbname))
            return []
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute('SELECT count(*) AS n FROM pg_stat_statements')
            count = cur.fetchone()['n']
            cur.execute("SELECT setting FROM pg_settings WHERE name = 'pg_stat_statements.max'")
            setting = cur.fetchone()
            self.check.gauge('postgresql.pg_stat_statements.max', int(setting['setting']) if setting else 0,
                             tags=self.tags)
            self.check.count('postgresql.pg_stat_statements.count', count, tags=self.tags)
            cols = sorted((METRIC_COLUMNS | TAG_COLUMNS | {'queryid'}) & available)
            cur.execute(STATEMENTS_QUERY.format(cols=', '.join(cols)))
            return [dict(r) for r in cur.fetchall()]

    def statement_metrics(self, conn):
        try:
            rows = self._rows(conn)
        except psycopg2.Error as exc:
            self._error(conn, exc)
            return
        current = {}
        for row in rows:
            statement = datadog_agent.obfuscate_sql(row['query'])
            row['query'] = statement
            row['query_signature'] = compute_sql_signature(statement)
            key = (row['query_signature'], row['datname'], row['rolname'])
            if key in current:  # the same normalised text under two queryids: summed, as Datadog's check does
                for col in METRIC_COLUMNS & set(row):
                    current[key][col] = (current[key][col] or 0) + (row[col] or 0)
            else:
                current[key] = row
        derived = []
        for key, row in current.items():
            before = self.previous.get(key)
            if before is None:
                continue
            diff = dict(row)
            for col in METRIC_COLUMNS & set(row):
                diff[col] = (row[col] or 0) - (before[col] or 0)
            if diff['calls'] < 0:  # pg_stat_statements was reset: start again from here
                continue
            if diff['calls'] == 0:
                continue
            derived.append(diff)
        self.previous = current
        if not derived:
            return
        interval = self.check.instance.get('min_collection_interval', 15)
        payload = query_metrics_event(self.hostname, self.tags_no_db, derived, interval, self._version(conn))
        self.check.database_monitoring_query_metrics(json.dumps(payload, default=str))

    @staticmethod
    def _version(conn):
        version = conn.server_version  # 100023, 150014
        major = version // 10000
        return 'v{}.{}.0'.format(major, version % 10000) if major >= 10 else 'v{}.{}.{}'.format(
            major, version // 100 % 100, version % 100)

    # ---- plans -------------------------------------------------------------------------------

    def plans(self, conn):
        try:
            with conn.cursor() as cur:
                cur.execute(ACTIVITY_QUERY, (self.dbname,))
                statements = [r[0] for r in cur.fetchall()]
        except psycopg2.Error:
            conn.rollback()
            return
        for statement in statements[:10]:
            if statement.lstrip().split(None, 1)[0].lower() not in EXPLAINABLE:
                continue
            try:
                with conn.cursor() as cur:
                    cur.execute('SELECT {}(%s)'.format(EXPLAIN_FUNCTION), (statement,))
                    plan = cur.fetchone()[0]
            except psycopg2.errors.UndefinedFunction as exc:
                conn.rollback()
                self.check.warning(warning_with_tags(
                    'Unable to collect execution plans in dbname=%s. Check that the function %s exists in the '
                    'database. See ' + DOCS + ' for more details: %s', self.dbname, EXPLAIN_FUNCTION,
                    UNDEFINED_EXPLAIN, str(exc), host=self.hostname, dbname=self.dbname, code=UNDEFINED_EXPLAIN))
                self._explain_error('undefined-function')
                return
            except psycopg2.errors.InvalidSchemaName:
                conn.rollback()
                self._explain_error('invalid-schema')
                return
            except psycopg2.Error as exc:
                conn.rollback()
                self.check.log.debug('could not explain a statement: %s', exc)
                self._explain_error('database_error')
                continue
            obfuscated = datadog_agent.obfuscate_sql(statement)
            self.check.database_monitoring_query_sample(json.dumps({
                'host': self.hostname, 'ddagentversion': config.version(), 'ddsource': 'postgres',
                'dbm_type': 'plan', 'ddtags': ','.join(self.tags), 'timestamp': time.time() * 1000,
                'db': {'instance': self.dbname, 'plan': {'definition': json.dumps(plan), 'signature': None},
                       'query_signature': compute_sql_signature(obfuscated), 'statement': obfuscated},
            }, default=str))

    def _explain_error(self, reason):
        self.check.count('dd.postgres.statement_samples.error', 1,
                         tags=self.tags + ['error:explain-{}'.format(reason)])
