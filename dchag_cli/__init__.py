"""The `dchag` command line: a thin Typer/Rich skin over `pipelines`."""
