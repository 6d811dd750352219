"""What a job tells monitoring systems: healthchecks-style pings and a Prometheus textfile of metrics."""
