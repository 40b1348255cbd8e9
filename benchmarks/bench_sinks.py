"""Sink throughput: records/s written by the file formats (bounded shard and
streaming roll) and by the PostgreSQL upsert (first write, unchanged replay,
and a plain executemany upsert for comparison), on real Reuters-21578 stories.

    .venv/bin/python -m benchmarks.bench_sinks [--records 10000] [--postgres URL]

PostgreSQL figures need a server (default postgresql://postgres@127.0.0.1:5432/test);
the benchmark uses its own table and drops it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.datasets import data_dir
from tests.transforms.io.test_files import reuters_event_records
from wirestream.transforms.io.files import JsonLinesFormat, ParquetFormat, RollingFileWriter, RollPolicy
from wirestream.transforms.io.postgres import (LAYOUTS, PostgresRecordSink, PostgresTarget, RetryPolicy,
                                    _identifier, upsert_rows)
from wirestream.transforms.io.sinks import RecordKind, SinkSpec


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>9,.0f} records/s  ({seconds:.2f} s)"


def bench_files(documents: list[dict]) -> None:
    for file_format in (JsonLinesFormat, ParquetFormat):
        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            with open(Path(directory) / f"shard{file_format.suffix}", "wb") as handle:
                file_format.write(handle, documents, RecordKind.EVENTS)
            bounded = time.perf_counter() - start
            size = (Path(directory) / f"shard{file_format.suffix}").stat().st_size
        with tempfile.TemporaryDirectory() as directory:
            writer = RollingFileWriter(directory, RecordKind.EVENTS, file_format,
                                       RollPolicy(seconds=3600, max_records=len(documents) // 4))
            start = time.perf_counter()
            for i, document in enumerate(documents):
                writer.add(document)
                if i % 100 == 99:  # a bundle of 100 ends: fsync
                    writer.sync()
            writer.close()
            streaming = time.perf_counter() - start
        name = file_format.suffix.lstrip(".")
        print(f"{name:8} bounded shard   {rate(len(documents), bounded)}  "
              f"{size / len(documents):,.0f} bytes/record")
        print(f"{name:8} streaming roll  {rate(len(documents), streaming)}  (fsync per 100)")


def executemany_upsert(connection, table: str, rows: list[tuple]) -> None:
    layout = LAYOUTS[RecordKind.EVENTS]
    columns = sql.SQL(", ").join(map(sql.Identifier, layout.names))
    assignments = sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                     for c in layout.names[1:])
    statement = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({values}) ON CONFLICT (event_id) "
                        "DO UPDATE SET {assignments}").format(
        t=_identifier(table), cols=columns, assignments=assignments,
        values=sql.SQL(", ").join(sql.Placeholder() * len(layout.names)))
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(statement, rows)


def bench_postgres(records, server: str) -> None:
    table = f"wirestream_bench_{uuid.uuid4().hex[:8]}"
    target = PostgresTarget.from_spec(SinkSpec.parse(f"{server}?table={table}"))
    try:
        for label in ("first write", "replay, unchanged"):
            sink = PostgresRecordSink(target, RecordKind.EVENTS, RetryPolicy(attempts=1))
            start = time.perf_counter()
            for record in records:
                sink.add(record.event_id, record.to_dict())
            sink.close()
            print(f"postgres sink, {label:17} {rate(len(records), time.perf_counter() - start)}"
                  "  (record -> row -> COPY + upsert, 5,000 per transaction)")
        # The two ways to send a batch, on the same prepared rows.
        rows = [LAYOUTS[RecordKind.EVENTS].row(r.to_dict()) for r in records]
        batches = [rows[i:i + 5000] for i in range(0, len(rows), 5000)]
        with psycopg.connect(server, autocommit=True) as connection:
            for name, send in (("COPY + upsert", lambda b: upsert_rows(
                    connection, table, RecordKind.EVENTS, b)),
                               ("executemany", lambda b: executemany_upsert(connection, table, b))):
                connection.execute(sql.SQL("TRUNCATE {}").format(_identifier(table)))
                for label in ("first write", "replay"):
                    start = time.perf_counter()
                    for batch in batches:
                        send(batch)
                    print(f"postgres {name:13} {label:11} "
                          f"{rate(len(rows), time.perf_counter() - start)}")
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_identifier(table)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    records = reuters_event_records(data_dir(), args.records)
    documents = [r.to_dict() for r in records]
    print(f"{len(records):,} Reuters-21578 event records, "
          f"{sum(len(r.body) for r in records) / len(records):,.0f} chars of body on average")
    bench_files(documents)
    try:
        psycopg.connect(args.postgres, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        print(f"postgres: skipped, no server ({str(exc).splitlines()[0]})")
        return
    bench_postgres(records, args.postgres)


if __name__ == "__main__":
    main()
