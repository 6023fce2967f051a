"""Running studies: the study's config (inert data) and its resolution, one study (resume,
locks), the grid of studies (processes or Dask), progress, suites, racing, certifying a table."""
