"""The usage aggregator: a Lambda fed by the table's DynamoDB Stream that keeps usage snapshots.

`aggregator.handler.handler` is the Lambda entry point. The pure logic lives in `usage_records` (stream
record -> usage delta) and `snapshots` (deltas -> snapshot writes); `handler` only does the I/O.

This package imports nothing at import time. It is written against the pure core, `zae_limiter.core`,
which the Lambda zip carries with it (pulumi_component/lambda_package.py), and boto3 from the runtime.
"""

# The DynamoDB actions the handler performs on the table (the IAM manifest reads this; a test fails if
# the handler calls anything else). Reading the stream is the event source mapping's part:
# dynamodb:DescribeStream, GetRecords, GetShardIterator and ListStreams on the stream ARN.
TABLE_OPERATIONS = ("UpdateItem", "GetItem")
STREAM_OPERATIONS = ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
