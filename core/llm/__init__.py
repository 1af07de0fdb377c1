"""Answer tiers and (with the router) the providers behind them. No FastAPI or Dagster in here."""
