"""The lab's services (S3, Kafka, PostgreSQL, ROAPI) as native processes or Docker."""

from neuralake.lab.stack.control import ServiceStatus, down, logs, status, up

__all__ = ["ServiceStatus", "down", "logs", "status", "up"]
