"""Results folders into the tools people already keep open: Optuna storages (for
optuna-dashboard) and MLflow tracking servers. Read from the folders, never from a running
study: every library's trials, as the table recorded them."""
