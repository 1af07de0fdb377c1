"""Dagster definitions: outbox → Delta bronze/silver/gold, enrichment, training and export assets (issue 5)."""
