"""Benchmark harness: named workloads run side by side on this engine, Ray Data and Daft.

Run ``python -m bench --help``. The workload code is written once against the ray.data API
and handed the module ``engine`` or ``ray.data``; see ``bench/workloads/__init__.py``.
Not imported by ``engine``.
"""
