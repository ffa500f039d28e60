"""Scale-out mode (SPEC 8): Celery workers and one beat over Redis or RabbitMQ.

``CASEREACH_BROKER_URL`` selects the mode. Tasks carry ids or claim requests, never data: a
worker claims rows with leases (``FOR UPDATE SKIP LOCKED``), re-checks, acts and completes
through the same code the embedded loops run, so the database stays the source of truth.
"""
