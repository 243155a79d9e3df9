"""Serve the catalog with ROAPI, and the FastAPI + Polars baseline it is raced against."""
