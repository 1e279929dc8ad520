"""Choosing targets and keeping their health: strategies, circuit breakers, latency averages."""
