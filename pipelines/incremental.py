"""What a derived table has to rebuild: the tenants whose rows changed in any of its sources since it was last built.

Each derived table records, in its own commits, the version of every source it was built from (core/lake.py); the
sources' logs then say which tenants' files were added or removed after those versions. Tenants are rebuilt whole,
in chunks bounded by their row counts so memory stays bounded however large the lake grows; only the last chunk's
commit records the new source versions, so a run that dies halfway is redone from the old ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from core.lake import Lake, TableSpec

MAX_ROWS_PER_CHUNK = 3_000_000


def changed_tenants(
    lake: Lake, *, targets: Sequence[TableSpec], sources: Sequence[TableSpec]
) -> tuple[set[str], dict[str, int]]:
    tenants: set[str] = set()
    versions: dict[str, int] = {}
    recorded = [lake.source_versions(target, sources) for target in targets]
    for source in sources:
        built_from = [r[source.name] for r in recorded]
        since = None if None in built_from else min(built_from)
        changed, version = lake.tenants_changed(source, since=since)
        tenants |= changed
        if version is not None:
            versions[source.name] = version
    return tenants, versions


def tenant_chunks(
    lake: Lake, table: TableSpec, tenants: Iterable[str], *, max_rows: int = MAX_ROWS_PER_CHUNK
) -> Iterator[list[str]]:
    """The tenants in groups whose rows in `table` add up to at most `max_rows` (a larger tenant goes alone)."""
    wanted = sorted(set(tenants))
    delta = lake.table(table)
    rows: dict[str, int] = dict.fromkeys(wanted, 0)
    if delta is not None:
        actions = delta.get_add_actions(flatten=True)
        for tenant, count in zip(
            actions.column("partition.tenant_id").to_pylist(), actions.column("num_records").to_pylist(), strict=True
        ):
            if tenant in rows:
                rows[tenant] += count or 0
    chunk: list[str] = []
    size = 0
    for tenant in wanted:
        if chunk and size + rows[tenant] > max_rows:
            yield chunk
            chunk, size = [], 0
        chunk.append(tenant)
        size += rows[tenant]
    if chunk:
        yield chunk
