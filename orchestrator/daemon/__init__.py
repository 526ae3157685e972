"""The per-node swarm daemon (`pyswarm daemon`), its local state on disk, and how it is started.

See `orchestrator/__init__.py` for how the pieces fit.
"""
