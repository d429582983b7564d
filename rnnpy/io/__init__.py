"""Files: models saved and loaded without pickle (rnnpy.io.checkpoint, with the
configuration in rnnpy.io.config and extra data in rnnpy.io.codec), written
atomically (rnnpy.io.atomic), and exported to ONNX (rnnpy.io.onnx).
"""
from . import atomic, checkpoint, codec, config
from .atomic import atomic_write, remove_dead_temporaries
from .checkpoint import (FORMAT, HEADER, MAX_HEADER_BYTES, VERSION, load, load_with_extra,
                         save)
from .config import MAX_DEPTH, MAX_MODULES, MODULES, build_module, module_config, planned_params
from .errors import ModelFileError
from .onnx import build_onnx, export_onnx

__all__ = ["save", "load", "load_with_extra", "ModelFileError", "atomic_write",
           "remove_dead_temporaries", "module_config", "build_module", "planned_params",
           "export_onnx", "build_onnx", "FORMAT", "VERSION", "HEADER", "MAX_DEPTH",
           "MAX_MODULES", "MAX_HEADER_BYTES", "MODULES"]
