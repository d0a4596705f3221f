"""Drivers and transports: the lean data plane, the boto3 path, and the sync and async drivers that
run the core's flows through them."""
