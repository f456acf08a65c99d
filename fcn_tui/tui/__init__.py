"""The Textual terminal app: set up an MLP, train it in a background thread, watch it learn.

`app.FcnApp` is the entry point (`fcn-tui` / `fcn-tui ui`). Training and data loading run in
thread workers that talk to the UI only through the messages in `messages.py`; the engine
(`fcn_tui.engine`) knows nothing of this package.
"""
