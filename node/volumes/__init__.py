"""Named volumes: the `local` driver (`<data-root>/volumes/<name>/_data`) and the service over it."""
