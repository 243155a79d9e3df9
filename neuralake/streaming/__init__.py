"""Streaming into the lakehouse: Kafka messages -> a Delta bronze table, exactly once.

- :mod:`.schemas`   the contract: message, bronze and dead-letter schemas, txn appIds
- :mod:`.wire`      encode rows as messages (bulk), decode and check one message
- :mod:`.topics`    AdminClient helpers: create a topic, watermarks, a group's lag
- :mod:`.produce`   replay the signal generator into a topic at a steady rate
- :mod:`.baseline`  the Python consumer -> Delta writer, the baseline for the Rust one
- :mod:`.freshness` how soon a reader sees a message, measured by polling the table
- :mod:`.metrics`   read a writer process's Prometheus /metrics
"""
