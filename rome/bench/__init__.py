"""Benchmarks, one module per `rome bench` subcommand, and what they share (common.py).

`ingest` (the plain `rome bench`), `growth`, `scale`, `web`, `slow-clients` and
`probe` measure Rome as it runs: worker and web processes are started as
subprocesses, and what the bench asks of the Celery app goes through
rome.ops.seam. The one task only the bench needs, the plain baseline's, stays
with the workers (workers/naive.py), loaded by the bench's own workers alone.
"""
