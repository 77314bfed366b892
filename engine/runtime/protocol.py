"""Message kinds exchanged between the driver's ROUTER and each worker's DEALER.

Every message is multipart: one small pickled header tuple, then raw payload frames
(functions, arguments, inline blocks) sent without copying. Header layouts:

driver -> worker
    (TASK, key, attempt, digest, credits)      frames: [fn bytes or b""], args
    (CREDIT, key, n)
    (CANCEL, key)
    (ACTOR_INIT,)                              frames: [cloudpickled (cls, args, kwargs)]
    (SHUTDOWN,)
worker -> driver
    (READY, pid)
    (ACTOR_READY,)
    (OUTPUT, key, attempt, index, kind, block_id, rows, size)   frames: [schema, payload]
    (DONE, key, attempt, cpu_seconds)
    (ERROR, key, attempt, type_name, message, traceback)        frames: [pickled type]
    (SYSTEM_ERROR, key, attempt, error_name, message, lost_block_id)   not the UDF's fault:
                                        a block write failed, an input block is lost, ...
"""

from __future__ import annotations

import pickle
from typing import Any

TASK = 1
CREDIT = 2
CANCEL = 3
ACTOR_INIT = 4
SHUTDOWN = 5
READY = 10
ACTOR_READY = 11
OUTPUT = 12
DONE = 13
ERROR = 14
SYSTEM_ERROR = 15

# SYSTEM_ERROR names (the driver maps them to engine.errors classes)
SYS_STORE_WRITE = "StoreWriteError"
SYS_OBJECT_LOST = "ObjectLostError"
SYS_FN_MISSING = "FunctionMissing"  # the worker evicted a function the driver thought cached

# Functions each worker keeps, least recently used evicted (the driver mirrors the policy).
FN_CACHE_SIZE = 64

# OUTPUT kinds
KIND_STORED = 0  # block written to the shared store; payload frame empty
KIND_INLINE = 1  # block as IPC stream bytes in the payload frame
KIND_VALUE = 2  # any picklable value in the payload frame


def encode_header(*fields: Any) -> bytes:
    return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)


def decode_header(frame: bytes | memoryview) -> tuple[Any, ...]:
    return pickle.loads(frame)  # type: ignore[no-any-return]
