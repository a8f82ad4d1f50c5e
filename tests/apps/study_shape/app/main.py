"""A plain Flask app shaped like the study's: model chosen by MODEL_SOURCE / MODEL_VERSION, read at import
from a relative path (DISK) or a hard-coded bucket (S3). A tiny logistic model stored as JSON."""

import json
import math
import os
import tempfile

from flask import Flask, jsonify, request

BUCKET = "study-models"  # hard-coded, as in the study
MODEL_SOURCE = os.environ.get("MODEL_SOURCE", "DISK")
MODEL_VERSION = os.environ["MODEL_VERSION"]


def load_model() -> dict:
    if MODEL_SOURCE == "S3":
        import boto3

        local = os.path.join(tempfile.gettempdir(), f"{MODEL_VERSION}.json")
        boto3.client("s3").download_file(BUCKET, f"{MODEL_VERSION}.json", local)
        path = local
    else:
        path = os.path.join("models", f"{MODEL_VERSION}.json")  # relative to the working directory
    with open(path) as fh:
        return json.load(fh)


MODEL = load_model()
app = Flask(__name__)


@app.route("/", methods=["GET"])
def root():
    return jsonify({"model_version": MODEL_VERSION, "source": MODEL_SOURCE})


@app.route("/predict", methods=["POST"])
def predict():
    features = request.get_json(force=True)
    score = MODEL["bias"] + sum(w * float(features.get(name, 0)) for name, w in MODEL["weights"].items())
    probability = 1 / (1 + math.exp(-score))
    return jsonify({"prediction": ">$50K" if probability > 0.5 else "<=$50K", "probability": probability})
