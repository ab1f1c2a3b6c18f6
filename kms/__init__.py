"""tatum-kms: the application (store, CLI, daemon) on top of `chains` and `hsm`."""

__version__ = "8.0.1"
