"""Outbound campaigns: rows of call data dialled at a pace, within calling hours, with retries,
durable in Redis (``store``) and driven by one runner per cluster (``runner``, ``actor``)."""
