"""Studies: the study runner and everything it drives runs through.

- `store`    the only module that talks to Optuna: studies in a journal, SQLite or PostgreSQL;
              queueing, claims, epoch reports, heartbeats, outages, read-back.
- `runner`   plans, claims, trains and records runs (single runs and studies), for `fcn-tui run`,
              `fcn-tui worker` and the app alike.
- `packs`    a pack of runs trained at once, each member recorded as a run of its own.
- `events`   what the runner yields about each run (starting, trained, skipped, crashed).
- `queue`    where a single run's folder goes, and what `--resume` does with it.
- `plots`    `fcn-tui plot`'s figures of a study as a whole (history, importances).

Nothing is imported here, so `import fcn_tui.studies.events` stays light.
"""
