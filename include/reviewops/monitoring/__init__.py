"""Weekly monitoring of scored reviews.

``drift`` (distribution distances), ``metrics`` (a week's metrics), ``thresholds`` (the
gate over them), ``report`` (the HTML report) and ``step`` (the monitoring step that ties
them to a week's files). Monitoring sits above modeling: it reads the training reference
that :mod:`reviewops.modeling.reference` writes beside each model.

Every metric is plain JSON (numbers, strings, lists, dicts, null). A metric that a week
cannot define (accuracy without labels, drift of an empty week) is null, never a default
that looks like a measurement."""
