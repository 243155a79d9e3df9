"""Lab machinery: what runs the lab, not what the lessons teach.

Everything outside this package is lesson material: settings, Delta helpers, the catalog,
the data generator, streaming, Spark jobs, the API client and monitoring. Lessons read and
call that code. This package starts and grades things around it:

- :mod:`neuralake.lab.stack`: install and start the S3 server, Kafka, PostgreSQL, ROAPI and
  a Spark cluster as pid-tracked processes, and stop exactly what they started.
- :mod:`neuralake.lab.writer`: build, start, watch and stop the Rust writer's processes.
- :mod:`neuralake.lab.api`: serve the catalog with ROAPI, and a FastAPI baseline to race it.
- :mod:`neuralake.lab.bench`: the benchmark harness and the targets it checks.
- :mod:`neuralake.lab.graders`: the labs' checks, hints and the student bundle.
- :mod:`neuralake.lab.docs` and :mod:`neuralake.lab.notebooks`: run the lessons headless and
  build the docs site.
- :mod:`neuralake.lab.cli`: the ``neuralake`` command.

Lesson material never imports this package (``tests/test_layers.py`` checks it); lessons
import from it only what they need to start things.
"""
