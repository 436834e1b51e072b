"""One library call per command that writes figures beside its artifacts: the top layer
of `pipelines/`, composing evaluation, training or benchmarks with `plots/`, so the CLI
only parses flags and prints what these return."""
