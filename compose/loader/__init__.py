"""The Compose file loader: files -> merged, interpolated, validated, normalised `Project`."""

from compose.loader.errors import ConfigValidationError, Issue, LoadError
from compose.loader.project import LoadOptions, load_project

__all__ = ["ConfigValidationError", "Issue", "LoadError", "LoadOptions", "load_project"]
