"""The naive-faust reference of `esep bench`: what a typical faust user writes.

One agent, one event per line message, one table update (`counts[notification_id] += 1`, memory
store, so every update also produces one changelog record) and one awaited `topic.send(...)` per
event. Values use faust's own json codec (a dict per event, no Record model: a Record would only
make the reference slower). Nothing is tuned: it is the yardstick, not a contender.

Run by the benchmark as a subprocess worker, configured by the environment:

    ESEP_BENCH_BROKER      bootstrap host:port
    ESEP_BENCH_APP_ID      faust app id (also the consumer group and the changelog topic prefix)
    ESEP_BENCH_IN          input topic (line messages, created by the caller)
    ESEP_BENCH_OUT         output topic (created by the caller)
    ESEP_BENCH_PARTITIONS  partitions of the input topic (the table's changelog gets as many)
    ESEP_BENCH_DATA_DIR    faust's data dir
    ESEP_BENCH_WEB_PORT    web port, bound to 127.0.0.1

    python -m tools.bench_naive
"""
from __future__ import annotations

import os
import sys

import faust

TABLE = "line-counts"


def build_app(env=os.environ) -> faust.App:
    partitions = int(env.get("ESEP_BENCH_PARTITIONS", "4"))
    app = faust.App(
        env["ESEP_BENCH_APP_ID"],
        broker=f"kafka://{env['ESEP_BENCH_BROKER'].split(',')[0]}",
        store="memory://",
        datadir=env["ESEP_BENCH_DATA_DIR"],
        autodiscover=False,
        web_enabled=True,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=int(env["ESEP_BENCH_WEB_PORT"]),
        topic_partitions=partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(env["ESEP_BENCH_IN"], key_serializer="raw", value_serializer="json", partitions=partitions)
    sink = app.topic(env["ESEP_BENCH_OUT"], key_serializer="raw", value_serializer="json", partitions=partitions)
    counts = app.Table(TABLE, default=int, partitions=partitions)

    @app.agent(source, name="count-lines")
    async def count_lines(stream):
        async for key, line in stream.items():
            counts[line["notification_id"]] += 1
            await sink.send(key=key, value=line)

    return app


def main() -> None:
    from faust.worker import Worker

    app = build_app()
    Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    sys.exit(main())
