"""Google Cloud: the BigQuery source, Gemini request and response formats, batch
prediction and supervised tuning on Vertex AI, prompt templates and their evaluation.

Package data: the prompt templates (``prompt_templates/<name>/v<N>.toml``) and the BigQuery
SQL (``sql/``). Nothing here talks to Google itself: the Airflow glue runs the provider's
operators, and these modules write their inputs and read their outputs."""
