"""Set-based row writes for the hot path.

On PostgreSQL inserts go through COPY (ids taken from the sequence first when
the caller needs them) and updates take whole columns as arrays (``unnest``),
so a chunk of 500 followers costs one round trip per table and the SQL text
does not grow with the chunk. Django's ``bulk_update`` builds a CASE per row per
column, which measured ~4 s for 2,000 mirrors; this measured tens of
milliseconds. SQLite (embedded mode, small scale) gets plain ``executemany``.
"""

from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def _columns(model: type[Model], fields: Sequence[str]):
    return [model._meta.get_field(name) for name in fields]


def _pg_array_type(field) -> str:
    target = field.target_field if field.is_relation else field
    db_type = target.rel_db_type(connection) if field.is_relation else field.db_type(connection)
    return f"{db_type}[]"


def _prep(field, value):
    return field.get_db_prep_save(value, connection) if value is not None else None


def reserve_ids(counts: Sequence[tuple[type[Model], int]]) -> list[list[int]] | None:
    """New primary keys for several tables in one round trip (PostgreSQL):
    ``[(Position, 500), (Order, 500)]`` gives 500 ids of each table's
    sequence, ascending, for ``insert_rows(..., ids=...)``. None elsewhere
    (SQLite numbers rows as it inserts them: use ``returning``)."""
    if connection.vendor != "postgresql":
        return None
    wanted = [(i, model, n) for i, (model, n) in enumerate(counts) if n]
    reserved: list[list[int]] = [[] for _ in counts]
    if not wanted:
        return reserved
    # Each sequence is looked up once per statement, not once per row
    # (pg_get_serial_sequence searches the catalog): a MATERIALIZED CTE.
    lookups = ", ".join(f"pg_get_serial_sequence(%s, %s)::regclass AS s{i}" for i, _, _ in wanted)
    # (The aggregate is over a column of the subquery's own: an aggregate of
    # only outer columns would belong to the outer query.)
    arrays = ", ".join(
        f"(SELECT array_agg(g.id) FROM (SELECT nextval(s.s{i}) AS id FROM generate_series(1, %s)) AS g)"
        for i, _, _ in wanted
    )
    params: list = []
    for _, model, _ in wanted:
        params += [model._meta.db_table, model._meta.pk.column]
    params += [n for _, _, n in wanted]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH s AS MATERIALIZED (SELECT {lookups}) SELECT {arrays} FROM s", params)
        row = cursor.fetchone()
    for (i, _, _), ids in zip(wanted, row, strict=True):
        reserved[i] = sorted(ids)
    return reserved


def insert_rows(
    model: type[Model],
    fields: Sequence[str],
    rows: Sequence[Sequence],
    *,
    returning: bool = False,
    ids: Sequence[int] | None = None,
):
    """INSERT rows (tuples in ``fields`` order, values already of the column's
    Python type); returns the new ids in order if asked. ``ids`` are ids
    taken before (``reserve_ids``, PostgreSQL only), one per row: the rows
    get them and no statement takes ids from the sequence."""
    if ids is not None and connection.vendor != "postgresql":
        raise ValueError("ids reserved up front are a PostgreSQL feature (see reserve_ids)")
    if not rows:
        return [] if returning else None
    cols = _columns(model, fields)
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    pk = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = [c.column for c in cols]
            if ids is not None:
                ids = list(ids)
                names = [pk, *names]
                rows = [(i, *row) for i, row in zip(ids, rows, strict=True)]
            elif returning:
                # Take the ids from the table's sequence up front, so the rows
                # can go through COPY (which returns nothing).
                # The sequence is looked up once per statement, not once
                # per row (pg_get_serial_sequence searches the catalog).
                cursor.execute(
                    "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) "
                    "SELECT nextval(s.seq) FROM s, generate_series(1, %s)",
                    [model._meta.db_table, pk, len(rows)],
                )
                ids = [r[0] for r in cursor.fetchall()]
                names = [pk, *names]
                rows = [(i, *row) for i, row in zip(ids, rows, strict=True)]
            with cursor.cursor.copy(f"COPY {table} ({', '.join(qn(n) for n in names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return ids
        names = ", ".join(qn(c.column) for c in cols)
        placeholders = ", ".join(["%s"] * len(cols))
        prepared = [[_prep(c, row[i]) for i, c in enumerate(cols)] for row in rows]
        sql = f"INSERT INTO {table} ({names}) VALUES ({placeholders})"
        if returning:
            # Multi-row INSERT ... RETURNING, as many rows per statement as the
            # parameter limit allows: a statement per row would make the
            # chunk's query count grow with its followers. SQLite gives no
            # order for RETURNING rows, but the ids of one statement increase
            # in VALUES order, so sorting them restores it.
            per_statement = max(1, connection.features.max_query_params // len(cols))
            ids = []
            for start in range(0, len(prepared), per_statement):
                batch = prepared[start : start + per_statement]
                values_sql = ", ".join([f"({placeholders})"] * len(batch))
                cursor.execute(
                    f"INSERT INTO {table} ({names}) VALUES {values_sql} RETURNING {qn(pk)}",
                    [v for values in batch for v in values],
                )
                ids.extend(sorted(r[0] for r in cursor.fetchall()))
            return ids
        cursor.executemany(sql, prepared)
        return None


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence], *, add: bool = False) -> None:
    """UPDATE by primary key: each row is ``(pk, v1, v2, ...)``. With ``add``,
    the values are added to the columns (``col = col + v``) instead of set."""
    if not rows:
        return
    cols = _columns(model, fields)
    table = connection.ops.quote_name(model._meta.db_table)
    pk_col = connection.ops.quote_name(model._meta.pk.column)
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sets = ", ".join(
                f"{qn(c.column)} = t.{qn(c.column)} + v.c{i}" if add else f"{qn(c.column)} = v.c{i}"
                for i, c in enumerate(cols)
            )
            casts = ", ".join([f"%s::{_pg_array_type(model._meta.pk)}"] + [f"%s::{_pg_array_type(c)}" for c in cols])
            aliases = ", ".join(["id"] + [f"c{i}" for i in range(len(cols))])
            arrays = [[row[0] for row in rows]] + [[row[i + 1] for row in rows] for i in range(len(cols))]
            cursor.execute(
                f"UPDATE {table} AS t SET {sets} FROM unnest({casts}) AS v({aliases}) WHERE t.{pk_col} = v.id", arrays
            )
            return
        sets = ", ".join(_sqlite_add(c) if add else f"{qn(c.column)} = %s" for c in cols)
        cursor.executemany(
            f"UPDATE {table} SET {sets} WHERE {pk_col} = %s",
            [[_prep(c, row[i + 1]) for i, c in enumerate(cols)] + [row[0]] for row in rows],
        )


def _sqlite_add(field) -> str:
    """SQLite has no decimal type and adds as binary floats: a margin locked
    and released in steps could end 1e-15 below zero and trip the CHECK.
    Rounding to the column's places keeps the exact decimal value."""
    col = connection.ops.quote_name(field.column)
    if field.get_internal_type() == "DecimalField":
        return f"{col} = ROUND({col} + %s, {field.decimal_places})"
    return f"{col} = {col} + %s"
