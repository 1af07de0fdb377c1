from core.lake import TABLES


def test_every_lake_table_holds_both_tenants(lakehouse):
    for table in TABLES:
        data = lakehouse.lake.read(table, columns=["tenant_id"])
        assert data is not None and set(data.column("tenant_id").to_pylist()) == set(lakehouse.tenants), table.name
