"""The experiment: the study's method on the lab — data set, training, model cache, load tests (locust), result
files, cold-start statistics, plots, HTML report, the study's published rows, the bench matrix and warm-up rounds.

May import: everything below it (errors, format, engine, sources, app, runtimes, convert, lab). Nothing on the
serving path imports this package.
"""
