"""The app's backend: `fcn_tui.backend` (torch, the dataset and the engine), loaded in a worker
thread after the first paint. Kept here under its old name for the app's imports."""

from fcn_tui.backend import Backend, TorchBackend, list_devices

__all__ = ["Backend", "TorchBackend", "list_devices"]
