"""Prometheus metrics of the service: requests, latency, errors and batch sizes.

Each app gets its own registry, so several apps in one process (tests) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The service's counters and histograms, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("grader_http_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("grader_http_request_seconds", "HTTP request latency by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("grader_http_errors", "Error responses by error code.", ["code"], registry=r)
        self.batch_size = Histogram("grader_batch_size", "Answers graded per model call.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("grader_batch_seconds", "Time of one model call.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("grader_answers_graded", "Answers graded, by outcome.", ["outcome"], registry=r)
        self.queue_depth = Gauge("grader_queue_depth", "Answers waiting for the model.", registry=r)
        self.ready = Gauge("grader_ready", "1 once the model is loaded.", registry=r)

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
