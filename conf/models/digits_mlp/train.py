#!/usr/bin/env python3
"""Trains digits_mlp: a 64-64-10 MLP on scikit-learn's handwritten digits.

Deterministic (fixed random_state everywhere), no download: the data set
ships with scikit-learn (Debian python3-sklearn).  `make models` runs it.

Writes, next to this script (conf/models/digits_mlp/):

  1/W1.npy [64, 64]  1/b1.npy [64]    hidden layer, ReLU
  1/W2.npy [64, 10]  1/b2.npy [10]    output layer, softmax
  X_test.npy [n, 64] float32, y_test.npy [n] int64   the held-out split
  train_report.json  {"accuracy": ..., ...}

and the same four weight files into ../digits_mlp_py/1/, so the CUDA
model and its numpy twin serve identical weights.  All float32, W in
(in, out) layout: y = x @ W + b.

The model takes raw pixel values (0..16, as load_digits gives them);
the 1/16 input scaling the network was trained with is folded into W1.
The reported accuracy is that of exactly the served arithmetic (float32
forward pass of the saved weights), not of sklearn's float64 predict.
"""

import json
import os
import sys

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = os.path.dirname(os.path.abspath(__file__))
TWIN = os.path.join(HERE, "..", "digits_mlp_py")
SEED = 0
HIDDEN = 64


def forward(x, w1, b1, w2, b2):
    """The served model, in float32: softmax(relu(x W1 + b1) W2 + b2)."""
    h = np.maximum(x @ w1 + b1, np.float32(0))
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def main():
    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=SEED, stratify=y)

    clf = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu",
                        solver="adam", alpha=1e-4, max_iter=600,
                        random_state=SEED)
    clf.fit(x_train / 16.0, y_train)

    w1 = (clf.coefs_[0] / 16.0).astype(np.float32)
    b1 = clf.intercepts_[0].astype(np.float32)
    w2 = clf.coefs_[1].astype(np.float32)
    b2 = clf.intercepts_[1].astype(np.float32)

    probs = forward(x_test, w1, b1, w2, b2)
    accuracy = float((probs.argmax(axis=1) == y_test).mean())

    for d in (os.path.join(HERE, "1"), os.path.join(TWIN, "1")):
        os.makedirs(d, exist_ok=True)
        for name, a in (("W1", w1), ("b1", b1), ("W2", w2), ("b2", b2)):
            np.save(os.path.join(d, name + ".npy"), np.ascontiguousarray(a))
    np.save(os.path.join(HERE, "X_test.npy"), x_test)
    np.save(os.path.join(HERE, "y_test.npy"), y_test)

    report = {
        "accuracy": accuracy,
        "sklearn_accuracy": float(clf.score(x_test / 16.0, y_test)),
        "n_train": int(len(y_train)),
        "n_test": int(len(y_test)),
        "hidden": HIDDEN,
        "iterations": int(clf.n_iter_),
        "random_state": SEED,
    }
    with open(os.path.join(HERE, "train_report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("digits_mlp: held-out accuracy %.4f on %d digits (%d iterations)"
          % (accuracy, len(y_test), clf.n_iter_))
    return 0


if __name__ == "__main__":
    sys.exit(main())
