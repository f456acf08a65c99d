"""Studies: the study runner and everything it drives runs through.

- `store`    the only module that imports Optuna: studies in a journal, SQLite or PostgreSQL;
              queueing, claims, epoch reports, ends, heartbeats, fencing, outages, read-back
              (plain `StoredRun` records, history, importances). Trial attributes live here alone.
- `runner`   plans, claims, trains and records runs (single runs and studies), for `fcn-tui run`,
              `fcn-tui worker` and the app alike; decides between training here and `workers`.
- `workers`  `fcn-tui run --workers N`: N `fcn-tui worker` processes for one study, watched,
              stopped and reported on.
- `options`  what a run of presets is asked to do (`RunOptions`: folders, study, device, pack).
- `packs`    a pack of runs trained at once, each member recorded as a run of its own.
- `events`   what the runner yields about each run (starting, trained, skipped, crashed).
- `queue`    where a single run's folder goes, and what `--resume` does with it.
- `plots`    `fcn-tui plot`'s figures of a study as a whole (history, importances).

Nothing is imported here, so `import fcn_tui.studies.events` stays light.
"""
