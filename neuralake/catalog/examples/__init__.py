"""Example catalogs: ``neuro`` describes the lab's tables (signals, sessions, devices...)."""
