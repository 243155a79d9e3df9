"""Every pinned version of the stack's servers, in one place.

docker-compose.yml names the same versions as images; ``tests/test_stack_config.py``
checks that the two agree, so the native stack and the Docker one never drift apart.
"""

# MinIO. Its community edition went source-only in 2025-10 and the repository was
# archived in 2026-04. Natively we build the final commit of that repository from the
# Go module proxy (the proxy serves MinIO by commit only: its RELEASE tags are not
# semantic versions). For Docker we pin the last image MinIO published,
# RELEASE.2025-09-07T16-13-09Z. Both enforce If-None-Match conditional writes, which
# the S3 conformance test proves for the native build.
MINIO_GO_MODULE = "github.com/minio/minio"
MINIO_GO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"

# Apache Kafka, KRaft mode (no ZooKeeper), Java 17. Native: the broker jars from Maven
# Central (deps/kafka/pom.xml). Docker: the official image of the same version.
KAFKA_VERSION = "4.3.1"
KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"

# Spark runs in local mode from the pyspark wheel; these jars are added to it.
# delta-spark 4.4.0 is built for Spark 4.2.0; hadoop-aws must match pyspark's hadoop.
SPARK_VERSION = "4.2.0"
DELTA_SPARK_VERSION = "4.4.0"
HADOOP_AWS_VERSION = "3.5.0"

# PostgreSQL for the relational table in the catalog lesson: Debian's server natively,
# the official image of the same major version in Docker.
POSTGRES_MAJOR = "15"
POSTGRES_IMAGE = f"postgres:{POSTGRES_MAJOR}"

# ROAPI: natively the binary shipped in the `roapi` wheel (pyproject.toml); in Docker the
# image of the same release. No newer release builds from the crate registry (its
# `roapi` and `columnq` crates are placeholders): see docs/api.md.
ROAPI_VERSION = "0.12.7"
ROAPI_IMAGE = f"ghcr.io/roapi/roapi:v{ROAPI_VERSION}"
