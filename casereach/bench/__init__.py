"""The benchmark harness behind ``casereach bench`` (SPEC 9): each suite measures our path and
the raw floor it is up against, side by side. The command itself is in casereach.cli.benchmarks."""
