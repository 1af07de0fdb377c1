"""The anchor: the smallest FastAPI app uvicorn can serve, started the same way as Parley."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
