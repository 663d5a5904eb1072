"""Models: training (``training``), the hyperparameter search (``search``), evaluation
against baselines and the champion (``evaluation``), the promotion gate (``promotion``),
batch scoring (``scoring``) and reproduction of a registered model (``reproduce``)."""
