"""Dashboards tier: tenant-scoped metrics endpoints and HTML dashboards for tenant executives (issue 7)."""
