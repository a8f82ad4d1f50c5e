"""A user's own heavy Flask app, as the study deployed it: scikit-learn imported and a pickled
GradientBoosting model unpickled at import time (about 1.5 s of CPU on the development machine).

The model file is named by ``MODEL_PATH`` (``train.py`` writes one). Used by tests/lab/test_lab_heavy_app.py and
bench/lab_cpu_model.py: the issue-24 app that livelocked the lab when 100 of them started on 2 cores.
"""

import os
import pickle

import numpy as np
from flask import Flask, jsonify, request
from sklearn.ensemble import GradientBoostingClassifier  # noqa: F401 - the study's app imports its model class

FEATURES = ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")

with open(os.environ["MODEL_PATH"], "rb") as fh:
    MODEL = pickle.load(fh)  # the app's own trusted model, as in the study (not coldbrew's loader)

app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict():
    features = request.get_json(force=True)
    row = np.array([[float(features.get(name, 0)) for name in FEATURES]])
    label = MODEL.predict(row)[0]
    return jsonify({"prediction": ">$50K" if label else "<=$50K"})
