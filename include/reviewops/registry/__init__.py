"""The model registry (``store``): versions, their metadata, the champion and the history
of promotions; and each version's model card (``model_card``)."""
