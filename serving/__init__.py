"""Chat tier: the FastAPI app factory, its dependencies, routes and (later) the web widget."""
