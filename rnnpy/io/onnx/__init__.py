"""Export to ONNX: build_onnx gives the ModelProto, export_onnx writes it
(see rnnpy.io.onnx.export for what maps to what).
"""
from .export import MIN_OPSET, build_onnx, export_onnx

__all__ = ["build_onnx", "export_onnx", "MIN_OPSET"]
