"""The usage aggregator: a Lambda fed by the table's DynamoDB Stream that keeps usage snapshots.

`aggregator.handler.handler` is the Lambda entry point. The pure logic lives in `usage_records` (stream
record -> usage delta) and `snapshots` (deltas -> snapshot writes); `handler` only does the I/O.

This package imports nothing at import time: the Lambda zip carries it with only the zae_limiter modules
listed in `RUNTIME_MODULES` (and boto3 from the Lambda runtime).
"""

# The zae_limiter modules the handler needs, transitively: pure modules with no third-party imports.
# The Lambda zip holds exactly these plus an empty `zae_limiter/__init__.py`, because the package's real
# `__init__` imports the whole runtime limiter (tests/test_aggregator_package.py checks the list).
RUNTIME_MODULES = ("calendar_periods", "errors", "limits", "models", "schema", "validation")

# The DynamoDB actions the handler performs on the table (the IAM manifest reads this; a test fails if
# the handler calls anything else). Reading the stream is the event source mapping's part:
# dynamodb:DescribeStream, GetRecords, GetShardIterator and ListStreams on the stream ARN.
TABLE_OPERATIONS = ("UpdateItem", "GetItem")
STREAM_OPERATIONS = ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
