"""edgebench_runtime: the benchmark runner that edgebench pushes to every device.

It never imports the controller package ``edgebench`` and stays Python 3.6 compatible.
"""

__version__ = "0.1.0"
