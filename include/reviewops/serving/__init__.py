"""Online serving: the registry's champion over the Open Inference Protocol v2.

- ``settings``: ``ServeSettings``, the limits and batching knobs, validated;
- ``protocol``: v2 requests parsed and checked (the pipeline's cleaning and text limit),
  v2 responses and metadata built; no web framework;
- ``served``: a registered version loaded for serving (Keras safe mode, file verified
  against the registry) and what it answers for a list of texts;
- ``batching``: ``MicroBatcher``, the one thread that owns the model and coalesces
  concurrent requests into one model call;
- ``champion``: ``ChampionWatcher``, which polls the champion pointer and swaps a new
  version in atomically once it is loaded beside the old one;
- ``app``: the FastAPI application and the guard in front of it (token, body limit);
- ``server``: ``serve()`` and ``BackgroundServer`` (uvicorn).

Nothing here imports Airflow.
"""
