"""ML per kind (intent, sentiment, summarize, routing): features, training, evaluation, pyfunc wrappers (issue 6)."""
