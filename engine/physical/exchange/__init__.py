"""Exchanges: the map and reduce halves of sort, groupby, join, shuffle and repartition.

``partition`` holds the worker-side kernels that cut a block into partitions (by hash, by
sorted range, at random); ``tasks`` the picklable map and reduce callables built on them;
``plans`` the driver-side description of each operation that the exchange operator runs.
"""
