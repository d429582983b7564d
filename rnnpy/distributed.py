"""rnnpy.distributed: data-parallel training over MPI (defined in rnnpy.train.distributed)."""
from .train.distributed import (INSTALL_HINT, Session, Shard, abort_on_error, allreduce_gradients,
                                available, barrier, broadcast, broadcast_parameters, init, is_main,
                                native_allreduce, rank, shard_range, world_size)

__all__ = ["init", "rank", "world_size", "is_main", "barrier", "broadcast_parameters",
           "allreduce_gradients", "shard_range", "available", "broadcast", "native_allreduce",
           "Shard", "Session", "abort_on_error", "INSTALL_HINT"]
