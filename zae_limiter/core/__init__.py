"""The pure core: bucket math, limits, the table layout, request building, what answers mean, and
every operation as a flow. It imports neither boto3 nor threading, and takes its clocks as values."""
