"""Benchmarking: the same on-device harness (``edgekit/harness.py``) run anywhere.

* :mod:`.run` — ``edgekit.benchmark()``: target defaults, dispatch, labelling of results.
* :mod:`.options` — what to measure, as harness arguments (shared by every runner).
* :mod:`.local` — a child process on this machine (``measured-host``); crashes become exit 3.
* :mod:`.ssh` — devices over the system OpenSSH client (``measured-device``), strict host keys.
* :mod:`.result` — validation of the JSON a harness returns; exit statuses to edgekit errors.
* :mod:`.stats` / :mod:`.compare` — percentiles, median CI, ratio of medians and its verdict.
* :mod:`.verify` — model checks before a model reaches a runtime that does not verify it.
* :mod:`.render` — the terminal table.

Nothing here imports TensorFlow, numpy or a LiteRT runtime at import time.
"""
