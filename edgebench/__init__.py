"""edgebench: fleet benchmark for neural networks on edge devices (controller side)."""

__version__ = "0.1.0"
