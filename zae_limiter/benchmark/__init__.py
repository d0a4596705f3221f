"""The benchmark command (`make bench`, `python -m zae_limiter.benchmark`): the hot path's cost on the
embedded DynamoDB, per scenario, sync and async, and optionally against the published package.

    spec.py              the scenarios, as plain data
    engine.py            warm-up, capacity pass, timed cells: requests, CPU, throughput, latency
    sizing.py            DynamoDB item sizes and the AWS WCU estimate
    ours.py              this package's side, through the public API and `limiter.stats`
    published.py         the published package's own virtual environment, and running it
    published_runner.py  executed by that environment's python: the same engine on the published API
    report.py            rows, ratios, the rich tables and the JSON document
    cli.py               the command line
See docs/benchmarks.md.
"""
