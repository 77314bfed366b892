"""The runtime contract on Ray Core: the same plans on a Ray cluster.

``engine.init(address=...)`` picks this backend for ``"auto"`` or ``"host:port"``; ``ray`` is
imported only here (and in the modules Ray's workers load). Over Ray Client (``"ray://"``),
which cannot stream generator returns, tasks hand over their outputs when they end
(:mod:`.handles_client`).

* tasks are Ray remote functions with streaming generator returns; a driver thread per task
  takes their outputs only while the handle has credits, and Ray's generator backpressure
  stops the producer behind it (:mod:`.handles`);
* actors are Ray actors with the pool's ``num_cpus``/``num_gpus``; restarts and retries are
  Ray's ``max_restarts``/``max_task_retries``;
* blocks are Ray object refs wrapped in :class:`~.refs.RayBlockRef`; a task yields a small
  metadata object before each block, so rows, bytes and schema are known without fetching it
  (:mod:`.remote`);
* Ray's errors become the engine's typed errors (:mod:`.errors`).
"""
