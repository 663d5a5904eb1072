"""Benchmarks of reviewops (``make bench``): plain scripts, not part of the test suite.

Each ``bench_*.py`` measures one stage against a bare baseline in the same run and
writes its figures as JSON; ``run_all`` runs them one after another and renders
``bench/RESULTS.md``.
"""
