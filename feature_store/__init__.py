"""Entity and feature-view definitions over the lake, point-in-time correct, shared by training and serving."""
