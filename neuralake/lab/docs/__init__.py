"""Run the lessons headless into the docs site: the builder, its mkdocs hooks, its CLI."""
