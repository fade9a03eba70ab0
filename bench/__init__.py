"""Benchmarks and the load generator, importable as a package for the tests that share their code.

The scripts here are run as files (``.venv/bin/python bench/load_sse.py``); ``bench.load_core`` is the
load generator both ``bench/load_sse.py`` and ``tests/reliability`` drive.
"""
