"""A general task/actor runtime for Arrow blocks: workers, block store, refs, wire protocol.

Knows nothing of datasets, plans or operators. Import submodules directly; this package
imports nothing so that workers start fast.
"""
