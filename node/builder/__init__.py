"""The builder's engine-independent core: Dockerfile parsing, .dockerignore, build context, stage graph, cache key.

The executor (running RUN steps, committing layers) sits on top of these pure modules.
"""
