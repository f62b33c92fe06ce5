"""Offline analysis of ``.tflite`` models: ops, tensors, MACs, memory, op support and latency per target.

Importing this package is light (no TensorFlow, no interpreter); the flatbuffer schema module is
imported on first use. Only the optional TFLite Micro arena measurement runs a child process.
"""
from __future__ import annotations

from .arena import attach_arena, greedy_plan, measure_tflm_arena
from .fit import fit_target
from .model import ModelAnalysis, OpInfo, TensorInfo
from .reader import analyze_tflite

__all__ = ["ModelAnalysis", "OpInfo", "TensorInfo", "analyze_tflite", "attach_arena", "fit_target", "greedy_plan",
           "measure_tflm_arena"]
