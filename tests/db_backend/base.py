"""PostgreSQL for the test suite: Django's backend, with a cheaper flush.

A ``transaction=True`` test (``TransactionTestCase``) is cleaned up by a flush:
on PostgreSQL one ``TRUNCATE`` of every table (about a hundred), which makes and
unlinks a new file per table and took 1.5-8 s per test on this machine. Here the
flush deletes the rows instead, table by table, in the flush's own transaction:
the foreign keys Django makes are ``DEFERRABLE INITIALLY DEFERRED`` (checked at
commit, when every table is empty) and no migration adds rules, so the tables
end exactly as empty as after the ``TRUNCATE`` (sequences are not reset by
either, unless asked: then Django's ``TRUNCATE ... RESTART IDENTITY``). The one
trigger, the audit log's refusal of DELETE (copytrading migration 0021), is why
that table alone is still truncated: a TRUNCATE fires no row trigger.
Everything else is the PostgreSQL backend of production: Django's, instrumented by
django-prometheus (config/settings.py, config/test_settings.py).
"""

from django.db.backends.postgresql import operations
from django_prometheus.db.backends.postgresql import base

# Tables whose rows a trigger refuses to delete.
APPEND_ONLY = frozenset({"auditlog_logentry"})


class DatabaseOperations(operations.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade:
            return super().sql_flush(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return [
            f"{style.SQL_KEYWORD('TRUNCATE')} {style.SQL_FIELD(self.quote_name(table))};"
            if table in APPEND_ONLY
            else f"{style.SQL_KEYWORD('DELETE')} {style.SQL_KEYWORD('FROM')} {style.SQL_FIELD(self.quote_name(table))};"
            for table in tables
        ]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
