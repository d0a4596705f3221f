"""What a client keeps between calls: bucket views and its write queue, the configuration cache,
reservoirs, and the LimiterCore that holds them. No I/O."""
