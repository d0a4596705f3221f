"""The benchmark command (`make bench`, `python -m zae_limiter.benchmark`): the hot path's cost on the
embedded DynamoDB, per scenario, sync and async, and optionally against the published package and a
Redis-backed limiter, the systems taking turns within each cell.

    spec.py              the scenarios, as plain data
    engine.py            stretches of acquires (threads or tasks) and their sums: requests, CPU, latency
    cells.py             one system's cells, in this process or from N processes, a stretch at a time
    rounds.py            the systems round by round within each cell; capacity pass, then the cells
    sizing.py            DynamoDB item sizes and the AWS WCU estimate
    ours.py              this package's side, through the public API and `limiter.stats`
    published.py         the published package's own virtual environment, and driving its runner
    published_runner.py  executed by that environment's python: the same engine on the published API
    versus_redis.py      throttled-py's GCRA on a local redis-server (--compare-redis)
    report.py            rows, ratios, the over-admission check, the rich tables and the JSON document
    cli.py               the command line
See docs/benchmarks.md. (This file holds only this docstring: the runner loads the folder as a package.)
"""
