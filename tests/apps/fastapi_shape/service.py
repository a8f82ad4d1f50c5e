"""A FastAPI model service shaped like a user's (written for coldbrew's tests, not anyone's real app).

The model is loaded in the app's lifespan handler, as FastAPI's documentation shows for machine-learning
models, and dropped at shutdown; ``POST /predict`` takes a pydantic body and answers a probability;
``GET /`` says which model is loaded. The "model" is a tiny logistic regression in ``model.json``.
Deployed the way a user would: ``handler = Mangum(app)`` — here ``coldbrew lab --asgi service:app``.
"""

from __future__ import annotations

import json
import math
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from pydantic import BaseModel, Field

ml_models: dict[str, dict] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):
    ml_models["adult"] = json.loads((Path(__file__).parent / "model.json").read_text())
    yield
    ml_models.clear()


app = FastAPI(title="predict", lifespan=lifespan)


class Row(BaseModel):
    age: float = Field(ge=0, le=150)
    education_num: float = Field(ge=0)
    hours_per_week: float = Field(ge=0, le=168)


class Prediction(BaseModel):
    probability: float
    model: str


@app.get("/")
def root() -> dict:
    return {"models": sorted(ml_models)}


@app.post("/predict")
def predict(row: Row) -> Prediction:
    model = ml_models["adult"]
    score = model["bias"] + sum(weight * getattr(row, name) for name, weight in model["weights"].items())
    return Prediction(probability=1 / (1 + math.exp(-score)), model="adult")
