"""Metrics (``metrics``), structured logs (``logging``), their request and task
context (``middleware``, ``tasks``) and the ``/metrics`` endpoint (``views``).
docs/operations.md ("Metrics", "Logs") describes what an operator sees."""
