"""Command-line fronts: ``titans3`` (the daemon, :mod:`titans3.cli.serve`) and
``titanctl`` (the operator's admin client, :mod:`titans3.cli.titanctl`).

Like every front, a CLI only translates: arguments in, calls out, one line per
error (never a traceback), and a documented exit status.
"""
