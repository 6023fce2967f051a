"""Tabular benchmarks: build a table of learning curves (`build`), its files (`table_file`),
read it and snap configurations to its grid (`table`), answer a study's trials from it
(`lookup`)."""
