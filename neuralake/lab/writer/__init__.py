"""The Rust writer (``rust-writer/``) from Python: build it, run its processes, watch them.

- :mod:`.binary`   find or build ``neuralake-writer`` in the cache
- :mod:`.control`  ``up`` / ``down`` / ``status`` of ingest, compact and vacuum per table
- :mod:`.cli`      ``neuralake writer ...`` and ``neuralake produce``
"""
