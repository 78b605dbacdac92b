"""Search: in-memory galleries and pgvector HNSW indexes (docs/BENCHMARKS.md says how each was chosen)."""

from pydantic import Field

from faceservice.settings.environment import Variables, export, read, shown


class Search(Variables):
    """Search galleries and vector indexes"""

    # In-memory galleries (embeddings/search/gallery.py) scan all of a tenant's
    # protected templates (FAISS flat, half precision; ~3 ms at 100k x 128-d)
    # instead of asking pgvector. Budget it per web process (WEB_CONCURRENCY).
    SEARCH_MEMORY_MAX_BYTES: int = Field(
        512 * 1024 * 1024, description="in-memory search galleries per web process (512 MiB), 16 + 2·d bytes "
        "a face (27 MB per 100k faces at 128-d); larger tenants and filtered searches use pgvector; `0` "
        "turns them off")
    SEARCH_MEMORY_RELOAD_SECONDS: int = Field(
        30, description="after deletions, a gallery is loaded again at most this often: the longest a deleted "
        "face's template stays in a web process's memory (never in results)")
    SEARCH_MEMORY_IDLE_SECONDS: int = Field(
        300, description="a gallery not searched for this long is dropped from the process (a janitor thread "
        "checks every tenth of it)")
    # Loading takes ~10 s per million faces (3.9-4.9 s for 500k measured), which no
    # search should wait for. Smaller galleries load inline.
    SEARCH_MEMORY_SYNC_LOAD_FACES: int = Field(
        20000, description="galleries of more faces are loaded, and loaded again after deletions, by a thread "
        "beside the searches (pgvector answers until the first load is in; the old gallery answers during a "
        "reload)")
    SEARCH_CANDIDATE_FACTOR: int = Field(4, description="index candidates per requested match, re-ranked exactly")
    SEARCH_MIN_CANDIDATES: int = Field(40, description="at least this many candidates")
    # 10k, not 20k: a 10-20k tenant's own graph gave recall 1.0 for 2.6x (128-d) to
    # 7.6x (512-d) less CPU than the exact scan (docs/BENCHMARKS.md, "Vector search").
    EXACT_SEARCH_MAX_FACES: int = Field(
        10000, description="tenants with at most this many faces of a model are searched exactly; tenants "
        "above it get their own HNSW index (`HNSW_TENANT_*`), built by beat")
    HNSW_M: int = Field(16, description="graph degree of the shared per-model HNSW index")
    HNSW_EF_CONSTRUCTION: int = Field(64, description="build breadth of the shared per-model HNSW index")
    # 200, not 100: on the benchmark's face-like data every tenant served by HNSW
    # lost recall@10 to search depth; 200 bought +3 to +7 points of recall@10 for
    # ~1.5x the CPU of the vector query (docs/BENCHMARKS.md, "Vector search").
    HNSW_EF_SEARCH: int = Field(200, description="search breadth in the shared index (recall against latency)")
    # m=32 / ef_construction=128 gave more recall per CPU at 128-d, not at 512-d,
    # and built 4-5x slower. ef_search 400: recall@10 0.99+ for 20k-139k-face
    # tenants at 1M x 128-d, 0.97 for 50k x 512-d (800: 0.99 for 1.8x the CPU).
    HNSW_TENANT_M: int = Field(16, description="graph degree of the per-tenant HNSW indexes")
    HNSW_TENANT_EF_CONSTRUCTION: int = Field(64, description="build breadth of the per-tenant HNSW indexes")
    HNSW_TENANT_EF_SEARCH: int = Field(400, description="search breadth in a tenant's own index")
    VECTOR_INDEX_MAINTENANCE_WORK_MEM: str = Field(
        "", json_schema_extra=shown("*(server's)*"), description="`maintenance_work_mem` for the per-tenant index "
        "builds, e.g. `1GB`: the graph must fit (~1.1 KB a face at 128-d, ~2.5 KB at 512-d) or builds get "
        "several times slower")


export(read(Search), globals())
