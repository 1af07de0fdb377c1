"""The tenant's knowledge base: upload (JSON or a file), list, read, delete, and hybrid search."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from core.kb import store
from core.kb.parsing import DocumentError, EmptyDocument, UnsupportedDocument, parse_text, parse_upload
from core.schemas import Document, DocumentCreate, DocumentSummary, SearchHit, SearchRequest, SearchResult, UploadResult
from core.tenancy import Permission as P
from serving.deps import DbDep, KnowledgeBaseDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses

router = APIRouter(prefix="/v1/kb", tags=["knowledge base"], responses=problem_responses(401, 403, 422, 429))

_UPLOAD_BODY = {
    "requestBody": {
        "content": {
            "application/json": {"schema": DocumentCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": ".txt .md .html .csv .pdf"},
                        "source_url": {"type": "string"},
                        "metadata": {"type": "string", "description": "a JSON object"},
                    },
                }
            },
        },
        "required": True,
    }
}


def _document_problem(exc: DocumentError) -> Problem:
    if isinstance(exc, UnsupportedDocument):
        return Problem(415, str(exc), kind="unsupported-document")
    kind = "empty-document" if isinstance(exc, EmptyDocument) else "unreadable-document"
    return Problem(422, str(exc), kind=kind)


def _metadata_field(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    try:
        value = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        value = None
    if not isinstance(value, dict):
        raise Problem(422, "metadata must be a JSON object", kind="validation-error")
    return value


async def _read_upload(request: Request):
    """(documents, filename, source_url, metadata) from a JSON body or a multipart form with one file."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = DocumentCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} if e["type"] != "json_invalid" else e for e in exc.errors()]
            ) from None
        document = parse_text(title=body.title, text=body.text)
        return [document], None, body.source_url, body.metadata
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=10)
        except Exception:
            raise Problem(400, "The multipart body cannot be read.", kind="invalid-multipart") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(422, "Send the document as a form field named 'file'.", kind="validation-error")
        data = await upload.read()
        documents = parse_upload(filename=upload.filename or "", content_type=upload.content_type, data=data)
        return documents, upload.filename, form.get("source_url") or None, _metadata_field(form.get("metadata"))
    raise Problem(415, "Send JSON {title, text} or a multipart form with a file.", kind="unsupported-media-type")


@router.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    summary="Add a document (JSON) or upload a file; re-sending the same content changes nothing",
    openapi_extra=_UPLOAD_BODY,
    responses=problem_responses(400, 413, 415, 503),
)
async def upload_document(
    request: Request, response: Response, scope: Annotated[TenantScope, tenant_access(P.KB_WRITE)], kb: KnowledgeBaseDep
) -> UploadResult:
    try:
        documents, filename, source_url, metadata = await _read_upload(request)
    except DocumentError as exc:
        raise _document_problem(exc) from None
    added = await kb.add(
        tenant_id=scope.tenant_id, documents=documents, filename=filename, source_url=source_url, metadata=metadata
    )
    if not any(document.created for document in added):
        response.status_code = status.HTTP_200_OK
    return UploadResult(id=added[0].id, chunks=sum(d.chunks for d in added), documents=added)


@router.get("/documents", summary="List documents, newest first")
async def list_documents(
    scope: Annotated[TenantScope, tenant_access(P.KB_READ)],
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DocumentSummary]:
    async with db.connection() as conn:
        return await store.list_documents(conn, tenant_id=scope.tenant_id, limit=limit, offset=offset)


def _no_document(document_id: str) -> Problem:
    return Problem(404, f"No document '{document_id}'.", kind="not-found")


@router.get("/documents/{document_id}", summary="A document with its chunks", responses=problem_responses(404))
async def get_document(
    document_id: str, scope: Annotated[TenantScope, tenant_access(P.KB_READ)], db: DbDep
) -> Document:
    async with db.connection() as conn:
        document = await store.get_document(conn, tenant_id=scope.tenant_id, document_id=document_id)
    if document is None:
        raise _no_document(document_id)
    return document


@router.delete(
    "/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a document; its chunks leave the search index at once",
    responses=problem_responses(404),
)
async def delete_document(
    document_id: str, scope: Annotated[TenantScope, tenant_access(P.KB_WRITE)], kb: KnowledgeBaseDep
) -> Response:
    if not await kb.delete(tenant_id=scope.tenant_id, document_id=document_id):
        raise _no_document(document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/search", summary="Hybrid search: dense vectors and BM25, fused by reciprocal rank")
async def search(
    body: SearchRequest, scope: Annotated[TenantScope, tenant_access(P.KB_READ)], kb: KnowledgeBaseDep
) -> SearchResult:
    hits = await kb.search(tenant_id=scope.tenant_id, query=body.query, limit=body.top_k)
    return SearchResult(
        hits=[
            SearchHit(
                document_id=hit.payload["document_id"],
                chunk_id=hit.chunk_id,
                title=hit.payload.get("title", ""),
                heading=hit.payload.get("heading"),
                text=hit.payload.get("text", ""),
                score=round(hit.score, 6),
                relevance=round(hit.dense_score, 4),
                source_url=hit.payload.get("source_url"),
            )
            for hit in hits
        ]
    )
