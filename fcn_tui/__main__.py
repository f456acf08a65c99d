from fcn_tui.cli import entry

entry()
