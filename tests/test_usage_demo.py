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
