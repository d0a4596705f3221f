"""The embedded server's objects do not grow with the writes it applies (zae_limiter/local_server.py).

Before: moto kept every model instance it ever made (each write's old and new item images, with their
attributes) and every stream record as nested dicts, ~25 objects a write that were never freed. The
server's memory grew with every write, and so did each full pass of Python's cyclic garbage collector,
which walks every live object: past the clients' 2 s read timeout after some minutes of benchmark.

The real server (local_server.main, its HTTP exchange, moto) runs in a thread of a child process,
which then sends it writes over HTTP and counts the objects the collector tracks there before and
after. The child is a process of its own so that its moto (changed by the server) is not this one's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zae_limiter.core import schema

pytestmark = pytest.mark.server

WRITES = 1500

CHILD = r"""
import gc, json, os, sys, threading
from zae_limiter import local_server
from zae_limiter.core import schema
from zae_limiter.local import ensure_table, listen
from zae_limiter.transport.clients import make_client
from botocore.config import Config

sock = listen(0)
port = sock.getsockname()[1]
url = f"http://127.0.0.1:{port}"

def write(i):
    client.update_item(
        TableName="memory", Key=schema.bucket_key(f"k{i % 4}", "gpt"),
        UpdateExpression="ADD #c :one SET #t = :t, #u = :t",
        ExpressionAttributeNames={"#c": schema.counter_attr("rpm"), "#t": schema.tat_attr("rpm"), "#u": schema.tat_attr("tpm")},
        ExpressionAttributeValues={":one": {"N": "1"}, ":t": {"N": str(10**12 + i)}})

def measure():
    global client
    try:
        ensure_table("memory", endpoint_url=url)
        client = make_client("dynamodb", "us-east-1", url, Config(read_timeout=30))
        for i in range(200):  # every item exists, every code path has run once
            write(i)
        gc.collect()
        before = len(gc.get_objects())
        writes = int(sys.argv[1])
        for i in range(writes):
            write(i)
        gc.collect()
        after = len(gc.get_objects())
        stream = make_client("dynamodbstreams", "us-east-1", url, Config(read_timeout=30))
        arn = client.describe_table(TableName="memory")["Table"]["LatestStreamArn"]
        shard = stream.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = stream.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        first = stream.get_records(ShardIterator=iterator, Limit=10)["Records"]
        print(json.dumps({"per_write": (after - before) / writes, "first": [r["dynamodb"] for r in first]}, default=str), flush=True)
        os._exit(0)
    except BaseException as error:
        print(repr(error), file=sys.stderr, flush=True)
        os._exit(1)

threading.Thread(target=measure, daemon=True).start()
local_server.main(["--port", str(port), "--fd", str(sock.fileno())])  # the main thread: it sets a signal handler
"""


def test_the_embedded_server_keeps_no_objects_per_write_but_its_stream_record():
    child = subprocess.run([sys.executable, "-c", CHILD, str(WRITES)], capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.strip().splitlines()[-1])
    # One StreamRecord a write (its record is pickled bytes, which the collector does not walk); the
    # items are updated in place. Before: ~25.
    assert seen["per_write"] < 2, seen["per_write"]
    # The records are still there, whole, as GetRecords answers them: the write that took k0's counter
    # from 1 to 2 (the fifth) with both its images.
    key, counter, tat = schema.bucket_key("k0", "gpt"), schema.counter_attr("rpm"), schema.tat_attr("rpm")
    (modified,) = [r for r in seen["first"] if r["Keys"] == key and r.get("NewImage", {}).get(counter) == {"N": "2"}]
    assert modified["Keys"] == key
    assert modified["OldImage"][counter] == {"N": "1"}
    assert modified["OldImage"][tat] == {"N": str(10**12)} and modified["NewImage"][tat] == {"N": str(10**12 + 4)}
