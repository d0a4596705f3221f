"""The demo (the README's main job) runs end to end on the embedded server, aggregator and usage included."""

from __future__ import annotations

import asyncio
import io
import re
import uuid

from rich.console import Console

from zae_limiter import demo


def test_demo_runs_the_aggregator_and_prints_usage(endpoint_url, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(demo, "console", Console(file=out, width=120))
    monkeypatch.setattr(demo, "TABLE", f"demo_{uuid.uuid4().hex[:8]}")
    asyncio.run(demo.run(endpoint_url))
    text = out.getvalue()
    assert "batch item failures: none" in text
    # acme-key-1: 1,500 + 1,900 + 2,300 tokens over 3 calls (the 4th was rejected).
    # acme counts its key's calls (cascade) plus its own call, admitted then refunded: 4 acquires, no tokens.
    assert re.search(r"acme-key-1 +│ daily total +│ [0-9-]+ +│ +3 │ 3\.0 │ 5,700\.0 │", text), text
    assert re.search(r"acme +│ daily total +│ [0-9-]+ +│ +4 │ 3\.0 │ 5,700\.0 │", text), text
    assert "totals unchanged" in text
    # A bucket never used is full: the key's 3 rpm admit 3 calls and refuse the 4th for one emission
    # interval (20 s, less the moments the demo took), and the words say what the table shows.
    assert [line.split(":")[1].split(",")[0].strip() for line in text.splitlines() if line.startswith("request ")] == [
        "admitted", "admitted", "admitted", "rejected by acme-key-1/rpm; Retry-After"
    ]
    assert "Retry-After: 20s" in text
    assert "acme counts its key's 3 calls" in text
