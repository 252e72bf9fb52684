"""moebench reports: figures, tables and the claims check, read straight from the results
database (SQLite, opened read-only).

Run as ``python3 -m reports --db results/moebench.db --out reports-out`` (or through
``moebench report``). Modules, one concern each:

- ``db``: opens the database read-only, checks its schema version, loads rows into ``Run``s;
- ``network``: modeled cluster time: the trainer's network model (``comm.modeled_ms``) where
  a run logged it, else a fallback from counted bytes with the report's link defaults;
- ``summary``: per-run numbers (final BLEU, time to target, bytes per step) and grouping of
  seeds into configurations;
- ``style``: one colour per method, shared by every figure;
- ``figures``: the plots; ``tables``: the tables; ``claims``: the seed papers' claims checked
  against the sweep, with ``stats`` (sign-flip test, t intervals, Holm) and ``bleu_test`` (the
  BLEU claims' paired bootstrap through ``moebench bleu``); ``render``: the HTML page and the
  Markdown summary;
- ``cli``: the command line.
"""
