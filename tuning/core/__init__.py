"""The core: what every layer shares and nothing imports Keras for. Errors, the search space,
the budget, the trial-row schema and its table, the resume ledger, atomic files, locks and
signals, Dask connections, secrets in URLs."""
