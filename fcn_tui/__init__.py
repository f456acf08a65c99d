"""fcn-tui: train fully connected networks on Fashion-MNIST from the terminal."""

from fcn_tui.cpu import prepare_openmp

__version__ = "0.1.0"

prepare_openmp()  # before any module imports torch: OpenMP reads its wait policy once, at load
