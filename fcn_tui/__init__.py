"""fcn-tui: train fully connected networks on Fashion-MNIST from the terminal."""

__version__ = "0.1.0"
