"""relaygraph: durable, permissioned, observable agent runs."""

__version__ = "0.1.0"
