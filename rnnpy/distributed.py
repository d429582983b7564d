"""rnnpy.distributed: data-parallel training over MPI, defined in
rnnpy.train.distributed. The module holds the job's communicator, so the old
path is that module itself (not a copy of its names): ``rnnpy.distributed is
rnnpy.train.distributed``.
"""
import sys

from .train import distributed as _distributed

sys.modules[__name__] = _distributed
