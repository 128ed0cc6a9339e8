"""experiments: the command-line entry point and (later) YAML experiment definitions.

Nothing in ``mfg`` or ``solvers`` imports this package.
"""
