"""Shared kernel: settings, tenancy, contracts, one small interface per outside system.

Imports no other Parley package.
"""
