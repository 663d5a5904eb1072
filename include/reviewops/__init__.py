"""reviewops: the domain core of the review LLMOps pipeline.

Pure Python (pandas, pyarrow, TensorFlow). Nothing in this package imports Airflow:
the operators in ``plugins/reviewops_airflow`` call into it, and so does the
``reviewops`` command.
"""

__version__ = "0.1.0"
