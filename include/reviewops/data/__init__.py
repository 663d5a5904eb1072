"""The data plane: sources and their files, ingest, validation with quarantine,
transformation into curated weeks, text parsing, the safety scan, the canonical schema,
weekly windows and versioned datasets.

Package data: the shipped Drugs.com reviews (``reviews.tsv``, provenance in ``README.md``)
and the toxic-terms list of the safety scan."""
