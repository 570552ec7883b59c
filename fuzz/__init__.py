"""fmipfast's coverage-guided fuzz campaign (atheris): targets, seed corpora, regressions and the runner.

See fuzz/README.md; ``python -m fuzz --help``."""
