"""cs_nets: classic CIFAR-10 classifiers written from scratch in NumPy."""

__version__ = "0.1.0"
